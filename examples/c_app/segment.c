/* Run an `edgeseg export --c-array` model with the LiteRT C API: one input tensor read
 * from a file, one invoke, the raw output tensor and its per-pixel class ids written out.
 *
 *   ./segment INPUT.bin OUTPUT.bin [IDS.bin]
 *
 * INPUT.bin holds exactly the input tensor's bytes (for a uint8 model: H*W*3 RGB pixels,
 * row-major). OUTPUT.bin receives the output tensor's bytes; IDS.bin one uint8 class id
 * per output pixel (argmax over the last axis; the value itself for a 1-channel mask). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "litert_c_api.h"
#include EDGESEG_MODEL_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define MODEL_BYTES CAT(EDGESEG_MODEL, _model)
#define MODEL_LEN CAT(EDGESEG_MODEL, _model_len)
#define OUTPUT_SCALE CAT(EDGESEG_MODEL, _output_scale)
#define EDGESEG_OUTPUT_HEIGHT CAT(EDGESEG_MODEL_UPPER, _OUTPUT_HEIGHT)
#define EDGESEG_OUTPUT_WIDTH CAT(EDGESEG_MODEL_UPPER, _OUTPUT_WIDTH)

static int check(LiteRtStatus status, const char* what) {
  if (status != kLiteRtStatusOk) {
    fprintf(stderr, "error: %s failed (LiteRtStatus %d)\n", what, status);
    exit(1);
  }
  return 0;
}

static size_t read_file(const char* path, void* dst, size_t size) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "error: cannot open %s\n", path);
    exit(1);
  }
  size_t n = fread(dst, 1, size, f);
  int extra = fgetc(f);
  fclose(f);
  if (n != size || extra != EOF) {
    fprintf(stderr, "error: %s must hold exactly %zu bytes (the input tensor)\n", path, size);
    exit(1);
  }
  return n;
}

static void write_file(const char* path, const void* src, size_t size) {
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(src, 1, size, f) != size) {
    fprintf(stderr, "error: cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

/* Class ids from the output: argmax over channels (scores), or the value (a uint8 mask). */
static void class_ids(const void* out, size_t bytes, int channels, int is_float, uint8_t* ids) {
  size_t elem = is_float ? sizeof(float) : 1;
  size_t pixels = bytes / elem / (size_t)channels;
  for (size_t p = 0; p < pixels; ++p) {
    int best = 0;
    for (int c = 1; c < channels; ++c) {
      size_t i = p * (size_t)channels;
      int better = is_float ? ((const float*)out)[i + c] > ((const float*)out)[i + best]
                            : ((const uint8_t*)out)[i + c] > ((const uint8_t*)out)[i + best];
      if (better) best = c;
    }
    ids[p] = channels == 1 ? ((const uint8_t*)out)[p] : (uint8_t)best;
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s INPUT.bin OUTPUT.bin [IDS.bin]\n", argv[0]);
    return 2;
  }
  LiteRtEnvironment env = NULL;
  LiteRtModel model = NULL;
  LiteRtOptions options = NULL;
  LiteRtCompiledModel compiled = NULL;
  LiteRtSignature signature = NULL;
  LiteRtTensor in_tensor = NULL, out_tensor = NULL;
  LiteRtTensorBufferRequirements in_req = NULL, out_req = NULL;
  LiteRtTensorBuffer input = NULL, output = NULL;
  EdgesegTensorType in_type, out_type;

  check(LiteRtCreateEnvironment(0, NULL, &env), "LiteRtCreateEnvironment");
  /* The model bytes stay in the program's read-only data: LiteRT reads them in place. */
  check(LiteRtCreateModelFromBuffer(env, MODEL_BYTES, MODEL_LEN, &model), "LiteRtCreateModelFromBuffer");
  check(LiteRtCreateOptions(&options), "LiteRtCreateOptions");
  check(LiteRtSetOptionsHardwareAccelerators(options, kLiteRtHwAcceleratorCpu),
        "LiteRtSetOptionsHardwareAccelerators");
  check(LiteRtCreateCompiledModel(env, model, options, &compiled), "LiteRtCreateCompiledModel");
  check(LiteRtGetModelSignature(model, 0, &signature), "LiteRtGetModelSignature");
  check(LiteRtGetSignatureInputTensorByIndex(signature, 0, &in_tensor), "input tensor");
  check(LiteRtGetSignatureOutputTensorByIndex(signature, 0, &out_tensor), "output tensor");
  check(LiteRtGetRankedTensorType(in_tensor, &in_type), "input tensor type");
  check(LiteRtGetRankedTensorType(out_tensor, &out_type), "output tensor type");
  check(LiteRtGetCompiledModelInputBufferRequirements(compiled, 0, 0, &in_req), "input requirements");
  check(LiteRtGetCompiledModelOutputBufferRequirements(compiled, 0, 0, &out_req), "output requirements");
  check(LiteRtCreateManagedTensorBufferFromRequirements(env, &in_type, in_req, &input), "input buffer");
  check(LiteRtCreateManagedTensorBufferFromRequirements(env, &out_type, out_req, &output), "output buffer");

  size_t in_size = 0, out_size = 0;
  void* host = NULL;
  check(LiteRtGetTensorBufferPackedSize(input, &in_size), "input size");
  check(LiteRtGetTensorBufferPackedSize(output, &out_size), "output size");
  check(LiteRtLockTensorBuffer(input, &host, kLiteRtTensorBufferLockModeWrite), "lock input");
  read_file(argv[1], host, in_size);
  check(LiteRtUnlockTensorBuffer(input), "unlock input");

  check(LiteRtRunCompiledModel(compiled, 0, 1, &input, 1, &output), "LiteRtRunCompiledModel");

  check(LiteRtLockTensorBuffer(output, &host, kLiteRtTensorBufferLockModeRead), "lock output");
  write_file(argv[2], host, out_size);
  /* A float output has output_scale 0 in the exported header; channels from the size. */
  int is_float = OUTPUT_SCALE == 0.0f;
  size_t pixels = (size_t)(EDGESEG_OUTPUT_HEIGHT) * (size_t)(EDGESEG_OUTPUT_WIDTH);
  int channels = (int)(out_size / (is_float ? sizeof(float) : 1) / pixels);
  uint8_t* ids = (uint8_t*)malloc(pixels);
  class_ids(host, out_size, channels, is_float, ids);
  check(LiteRtUnlockTensorBuffer(output), "unlock output");
  if (argc > 3) write_file(argv[3], ids, pixels);
  printf("input %zu bytes, output %zu bytes (%zux%zu, %d channel(s))\n", in_size, out_size,
         (size_t)(EDGESEG_OUTPUT_HEIGHT), (size_t)(EDGESEG_OUTPUT_WIDTH), channels);

  free(ids);
  LiteRtDestroyTensorBuffer(input);
  LiteRtDestroyTensorBuffer(output);
  LiteRtDestroyCompiledModel(compiled);
  LiteRtDestroyOptions(options);
  LiteRtDestroyModel(model);
  LiteRtDestroyEnvironment(env);
  return 0;
}
