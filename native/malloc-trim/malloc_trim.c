/*
 * trim(): glibc's malloc_trim(0), which hands every free page of the heap back to the system.
 * Freed memory otherwise stays resident: a model's weights and onnxruntime's buffers (4-32 MB
 * blocks that glibc keeps on its heap) outlive the model's unload. Elsewhere (musl, macOS) a no-op.
 */
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
static napi_value Trim(napi_env env, napi_callback_info info) {
  napi_value result;
#ifdef __GLIBC__
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
#else
  napi_get_boolean(env, false, &result);
#endif
  return result;
}
static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
