"""Reading a .tflite, per-target compatibility, the Edge TPU pre-flight, inspect and export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_tflite as tt
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.convert.edgetpu import compile_edgetpu, compiler_summary, edgetpu_preflight
from edgeseg.convert.targets import check_target, compatibility
from edgeseg.device.export_c import c_identifier, export_c_array
from edgeseg.errors import EdgesegError
from edgeseg.tflite.flatbuffer import read_tflite
from edgeseg.tflite.metadata import embed_metadata

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("tensorflow")
    built = tt.build_models(tmp_path_factory.getbasetemp() / "convert_models")
    meta = tmp_path_factory.mktemp("inspect") / "seg_int8.tflite"
    data = built["int8_resize_softmax"].read_bytes()
    meta.write_bytes(embed_metadata(data, tt.sidecar()))
    return {**built, "with_metadata": meta}


def test_read_tflite_reports_io_quantization_and_ops(models):
    m = read_tflite(models["int8_resize_logits"])
    (inp,), (out,) = m.input_tensors, m.output_tensors
    assert inp.shape == (1, 32, 32, 3) and inp.dtype == "uint8"
    assert inp.scale[0] == pytest.approx(1 / 128, rel=0.01) and inp.zero_point[0] in (127, 128)
    assert out.dtype == "uint8" and out.quantized
    hist = m.op_histogram()
    assert hist["CONV_2D"] == 3 and hist["RESIZE_NEAREST_NEIGHBOR"] == 1
    assert hist["QUANTIZE"] == 2 and "TILE" not in hist
    assert m.size == models["int8_resize_logits"].stat().st_size
    assert "min_runtime_version" in m.metadata_names


def test_interpreter_fallback_agrees_with_the_schema_reader(models, monkeypatch):
    """Where only tflite-runtime is installed, the interpreter's listing gives the same model."""
    import edgeseg.tflite.flatbuffer as tf_file
    from edgeseg.runtime.interpreter import make_interpreter

    data = models["int8_tile_logits"].read_bytes()
    from ai_edge_litert import schema_py_generated as schema

    assert tf_file._parse_with_interpreter(data, make_interpreter) == tf_file._parse_with_schema(schema, data)


def _runtime_delegate_kernels(path: Path) -> int:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()  # applies the default XNNPACK delegate
    return sum(d["op_name"] == "DELEGATE" for d in it._get_ops_details())


@pytest.mark.parametrize("name", ["int8_resize_softmax", "int8_tile_logits",
                                  "float_resize_softmax"])
def test_xnnpack_table_predicts_the_runtime_delegation(models, name):
    report = check_target(read_tflite(models[name]), "xnnpack")
    assert 0 < report.supported < len(report.ops)
    assert report.partitions == _runtime_delegate_kernels(models[name])


@pytest.mark.slow
def test_argmax_head_runs_as_one_xnnpack_partition_as_the_interpreter_says(trained, synth_data,
                                                                            tmp_path):
    """`convert --int8 --head argmax` ends in ARG_MAX, CAST and a RESHAPE of the plain uint8
    class map: XNNPACK takes none of the three, so the graph is one partition, not two."""
    from edgeseg.convert.quantize import ConvertConfig, convert

    cfg = ConvertConfig(mode="int8", head="argmax", calib=str(synth_data / "train"),
                        calib_count=20)
    path = convert(trained[0], tmp_path / "argmax_int8.tflite", cfg, log=lambda s: None).path
    model = read_tflite(path)
    assert [op.name for op in model.ops][-3:] == ["ARG_MAX", "CAST", "RESHAPE"]
    kernels = _runtime_delegate_kernels(path)
    assert kernels == 1
    report = check_target(model, "xnnpack")
    assert report.partitions == kernels
    assert not report.ops[-1].supported and "quantization" in report.ops[-1].reason
    r = runner.invoke(app, ["inspect", str(path), "--json", "--no-gpu"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["targets"]["xnnpack"]["partitions"] == kernels


def test_edgetpu_preflight_passes_resize_and_int8_graph(models, tmp_path):
    report = edgetpu_preflight(models["int8_resize_logits"])
    assert report.fully_mapped and report.fallback_at is None
    assert "RESIZE_NEAREST_NEIGHBOR" in [p.support.op for p in report.ops]
    assert "all" in report.summary()
    md, js = report.save(tmp_path)
    assert ("| RESIZE_NEAREST_NEIGHBOR | 2 | align_corners=False, half_pixel_centers=False | "
            "yes | Edge TPU |") in md.read_text()
    assert json.loads(js.read_text())["edgetpu_ops"] == len(report.ops)


def test_edgetpu_preflight_flags_tile_and_where_the_cpu_takes_over(models):
    report = edgetpu_preflight(models["int8_tile_logits"])
    reasons = {s.op: s.reason for s in report.unsupported}
    assert "TILE" in reasons and "--target edgetpu" in reasons["TILE"]
    first = report.ops[report.fallback_at].support
    assert not first.supported and first.op in ("RESHAPE", "TILE")  # the 5-D reshape/tile
    assert all(p.device == "CPU" for p in report.ops[report.fallback_at:])
    assert all(p.device == "Edge TPU" for p in report.ops[:report.fallback_at])
    assert "falls back to the CPU" in report.summary()


def test_edgetpu_preflight_flags_float_ops(models):
    report = edgetpu_preflight(models["float_resize_softmax"])
    assert report.edgetpu_ops == 0 and report.fallback_at is None
    assert all("float" in s.reason for s in report.unsupported if s.op == "CONV_2D")
    assert compatibility(read_tflite(models["float_resize_softmax"]))["gpu"].supported == len(
        report.ops)


def test_edgetpu_softmax_over_pixels_stays_on_the_cpu(models):
    report = edgetpu_preflight(models["int8_resize_softmax"])
    assert report.ops[report.fallback_at].support.op == "SOFTMAX"


def test_compiled_edgetpu_model_reads_with_its_custom_op(models, tmp_path):
    """A compiled model keeps one ``edgetpu-custom-op``: on the Edge TPU, nowhere else."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(models["int8_resize_logits"].read_bytes(), 0)
    for code in model.operatorCodes:  # pretend the compiler swallowed the convolutions
        if code.builtinCode == schema.BuiltinOperator.CONV_2D:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            code.customCode = "edgetpu-custom-op"
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), b"TFL3")
    path = tmp_path / "m_edgetpu.tflite"
    path.write_bytes(bytes(b.Output()))
    m = read_tflite(path)
    assert m.op_histogram()["edgetpu-custom-op"] == 3
    reports = compatibility(m)
    assert reports["edgetpu"].supported == len(m.ops)
    assert reports["xnnpack"].unsupported_ops["edgetpu-custom-op"] == 3
    assert "edgetpu-custom-op" in reports["gpu"].unsupported_ops


def _fake_compiler(bin_dir: Path, exit_code: int) -> None:
    script = bin_dir / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        "# args: -s -o OUT MODEL\n"
        'out="$3"; model="$4"; name=$(basename "$model" .tflite)\n'
        f'[ {exit_code} -eq 0 ] && cp "$model" "$out/${{name}}_edgetpu.tflite"\n'
        'echo "Number of Edge TPU subgraphs: 1"\n'
        'echo "Number of operations that will run on Edge TPU: 9"\n'
        'echo "Number of operations that will run on CPU: 0"\n'
        f"exit {exit_code}\n")
    script.chmod(0o755)


def test_compile_edgetpu_runs_the_compiler_and_keeps_its_log(models, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert compile_edgetpu(models["int8_resize_logits"], tmp_path / "out") is None
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # the fake first; cp, basename
    _fake_compiler(bin_dir, 0)
    result = compile_edgetpu(models["int8_resize_logits"], tmp_path / "out")
    assert result == tmp_path / "out" / "int8_resize_logits_edgetpu.tflite" and result.exists()
    log = (tmp_path / "out" / "int8_resize_logits_edgetpu_compiler.log").read_text()
    assert compiler_summary(log) == {"subgraphs": 1, "edgetpu_ops": 9, "cpu_ops": 0}
    _fake_compiler(bin_dir, 1)
    with pytest.raises(EdgesegError, match="compiler.log"):
        compile_edgetpu(models["int8_resize_logits"], tmp_path / "out2")


def test_c_array_compiles_and_holds_the_file(models, tmp_path):
    if shutil.which("g++") is None or shutil.which("gcc") is None:
        pytest.skip("needs gcc and g++")
    model = models["with_metadata"]
    header, source = export_c_array(model, tmp_path)
    assert (header.name, source.name) == ("seg_int8.h", "seg_int8.cc")
    text = source.read_text()
    assert "EDGESEG_ALIGN16 const unsigned char seg_int8_model[]" in text
    assert "#define SEG_INT8_OUTPUT_CHANNELS" in header.read_text()
    assert '"road",' in text and "seg_int8_input_zero_point" in text
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "seg_int8.h"\n'
        "int main() {\n  unsigned long sum = 0;\n"
        "  for (unsigned i = 0; i < seg_int8_model_len; ++i) sum += seg_int8_model[i];\n"
        '  std::printf("%u %lu %d %d %s %d\\n", seg_int8_model_len, sum,\n'
        "    (int)(reinterpret_cast<std::uintptr_t>(seg_int8_model) % 16),\n"
        "    SEG_INT8_INPUT_HEIGHT, seg_int8_labels[2], seg_int8_input_zero_point);\n}\n")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", str(source), "-o",
                    str(tmp_path / "m.o")], check=True, timeout=120)
    subprocess.run(["g++", str(main), str(tmp_path / "m.o"), "-o", str(tmp_path / "prog")],
                   check=True, timeout=120)
    out = subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True,
                         check=True).stdout.split()
    data = model.read_bytes()
    zp = read_tflite(model).input_tensors[0].zero_point[0]
    assert out == [str(len(data)), str(sum(data)), "0", "32", "car", str(zp)]
    c_user = tmp_path / "user.c"  # the header is plain C too
    c_user.write_text('#include "seg_int8.h"\nint n(void) { return (int)seg_int8_model_len; }\n')
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-c", str(c_user), "-o",
                    str(tmp_path / "u.o")], check=True, timeout=60)
    # ... and so is the source: C11, aligned as in C++ (alignas(16) alone broke `gcc -x c`).
    c_main = tmp_path / "main.c"
    c_main.write_text('#include <stdint.h>\n#include <stdio.h>\n#include "seg_int8.h"\n'
                      "int main(void) { unsigned long s = 0; unsigned i;\n"
                      "  for (i = 0; i < seg_int8_model_len; ++i) s += seg_int8_model[i];\n"
                      '  printf("%u %lu %d\\n", seg_int8_model_len, s, (int)((uintptr_t)seg_int8_model % 16));\n'
                      "  return 0; }\n")
    subprocess.run(["gcc", "-x", "c", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
                    str(source), "-o", str(tmp_path / "mc.o")], check=True, timeout=120)
    subprocess.run(["gcc", "-std=c11", str(c_main), str(tmp_path / "mc.o"), "-o", str(tmp_path / "cprog")],
                   check=True, timeout=120)
    out = subprocess.run([str(tmp_path / "cprog")], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(data)), str(sum(data)), "0"]


def test_c_identifier_and_bad_names(models, tmp_path):
    assert c_identifier("seg-int8.v2") == "seg_int8_v2"
    assert c_identifier("2x") == "model_2x"
    with pytest.raises(EdgesegError, match="not a C identifier"):
        export_c_array(models["with_metadata"], tmp_path, name="my-model")


def test_inspect_cli_shows_tensors_metadata_and_targets(models):
    result = runner.invoke(app, ["inspect", str(models["with_metadata"]), "--ops"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("uint8", "zero point", "RESIZE_NEAREST_NEIGHBOR", "background, road, car",
                 "XNNPACK (CPU)", "GPU delegate", "Edge TPU", "falls back"):
        assert text in result.output, text


def test_inspect_cli_json(models):
    result = runner.invoke(app, ["inspect", str(models["with_metadata"]), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["metadata"]["labels"] == tt.LABELS
    assert info["model"]["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert set(info["targets"]) == {"xnnpack", "gpu", "edgetpu"}


def test_cli_bad_inputs_exit_2_with_one_line(models, tmp_path):
    not_model = tmp_path / "notes.tflite"
    not_model.write_text("not a model")
    for args, text in (
        (["inspect", str(tmp_path / "missing.tflite")], "no such model file"),
        (["inspect", str(not_model)], "not a TFLite model"),
        (["export", str(tmp_path / "missing.tflite"), "--c-array", "-o", str(tmp_path)],
         "no such model file"),
        (["export", str(not_model), "--c-array", "-o", str(tmp_path)], "not a TFLite model"),
        (["export", str(models["with_metadata"]), "-o", str(tmp_path)], "--c-array"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert text in result.output and "Traceback" not in result.output


def test_export_cli_writes_the_pair(models, tmp_path):
    result = runner.invoke(app, ["export", str(models["with_metadata"]), "--c-array",
                                 "-o", str(tmp_path / "c"), "--name", "segnet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "segnet.h").exists() and (tmp_path / "c" / "segnet.cc").exists()
    assert not list((tmp_path / "c").glob(".*"))  # no temporary files left behind


def test_inspect_and_export_do_not_import_tensorflow(models, tmp_path):
    code = (
        "import sys\n"
        "from edgeseg.verify.inspect import inspect_tflite\n"
        "from edgeseg.device.export_c import export_c_array\n"
        f"info = inspect_tflite({str(models['with_metadata'])!r})\n"
        f"export_c_array({str(models['with_metadata'])!r}, {str(tmp_path)!r})\n"
        "assert info['metadata']['labels'], info['metadata']\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


REAL_MODEL = Path("/work/shared/realdata/models/selfie_segmentation.tflite")


@pytest.mark.skipif(not REAL_MODEL.is_file(), reason="needs the shared selfie model")
def test_a_cut_short_model_is_one_line_not_a_struct_error(tmp_path):
    data = REAL_MODEL.read_bytes()
    half = tmp_path / "half.tflite"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgesegError, match="could not be loaded as a TFLite model"):
        read_tflite(half)
    for args in (["inspect", str(half)], ["export", str(half), "--c-array", "-o",
                                            str(tmp_path / "x")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        text = " ".join(result.output.split())
        assert f"{half} could not be loaded as a TFLite model" in text, text
        assert "check that the file is complete" in text and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
