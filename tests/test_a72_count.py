"""The emulated-count instrument's pure parts: stage marks to counts, kernel names to op kinds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

qemu_guest = pytest.importorskip("qemu_guest")
pi_cost_fit = pytest.importorskip("pi_cost_fit")


def test_nested_stages_lose_the_marks_own_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the plugin writes for: empty, empty, loop{ segment{} draw{} } with marks costing 100 each.
    marks = ["begin empty", "end empty", "begin empty", "end empty", "begin loop", "begin segment",
             "end segment", "begin draw", "end draw", "end loop"]
    at = [0, 100, 1000, 1100, 2000, 2100, 7100, 7200, 8200, 8300]
    counts = tmp_path / "counts.txt"
    counts.write_text("".join(f"mark {i} {n}\n" for i, n in enumerate(at)) + "total 9999\n")
    monkeypatch.setattr(qemu_guest, "_marks", marks)
    got = dict(qemu_guest._counts(str(counts)))
    assert got["mark overhead"] == 100
    assert got["segment"] == 4900 and got["draw"] == 900
    # loop = 6300 raw: 5 marks (its end, both of each inner stage) at 100 each, the rest is theirs.
    assert got["loop"] == got["segment"] + got["draw"] == 5800


@pytest.mark.parametrize(("function", "kind"), [
    ("xnn_qs8_qc8w_igemm_minmax_fp32_ukernel_2x8c8__asm_aarch64_neon_mlal_prfm", "conv"),
    ("xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_4x16c4__asm_aarch64_neondot_ld128", "conv1x1"),
    ("xnn_qs8_qc8w_dwconv_minmax_fp32_ukernel_9p16c__neonv8_mla8_ld64", "dwconv"),
    ("xnn_s8_ibilinear_ukernel__neon_u16", "resize"),
    ("_ZN6tflite13optimized_ops14SoftmaxInt8LUTIaaEEvRKNS_13SoftmaxParamsERKNS_12RuntimeShapeEPKT_S7_PT0_",
     "softmax"),
    ("_ZN6tflite29MultiplyByQuantizedMultiplierEiii", "quantize"),
    # XNNPACK's LOGISTIC and fused uint8 <-> int8 DEQUANTIZE + QUANTIZE (a table look-up), and its
    # DEQUANTIZE / QUANTIZE around a float32 softmax (convert --int8 since its one-partition rewrite)
    ("xnn_x8_lut_ukernel__aarch64_neon_tbx128x4_u64", "elementwise"),
    ("xnn_qs8_f32_vcvt_ukernel__neon_u32", "elementwise"),
    ("xnn_f32_qs8_vcvt_ukernel__neonv8_u32", "elementwise"),
    ("xnn_f32_raddstoreexpminusmax_ukernel__neonfma_rr1_lut64_p2_u16_acc2", "softmax_f32"),
    ("xnn_compute_floating_point_softmax", "softmax_f32"),
    ("xnn_f32_rmax_ukernel__neon_u16_acc4", "softmax_f32"),
    ("xnn_qs8_packw_gemm_goi_ukernel_x16c4__neondot", "rest"),
    ("xnn_compute_igemm", "rest"),
])
def test_profiled_functions_map_to_op_kinds(function: str, kind: str) -> None:
    """Names as the A72/A76 profiles of ai-edge-litert 2.3.0 printed them."""
    assert pi_cost_fit.kernel_group(function) == kind
