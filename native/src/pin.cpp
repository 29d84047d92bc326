#include "pin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace ctpshim {
namespace {

using EnsureFn = int (*)();
using SaveFn = void *(*)();
using InitializedFn = int (*)();
using FinalizingFn = int (*)();

struct PythonApi {
  EnsureFn ensure = nullptr;
  SaveFn save = nullptr;
  InitializedFn initialized = nullptr;
  FinalizingFn finalizing = nullptr;  // _Py_IsFinalizing (3.8-3.12) or Py_IsFinalizing (3.13+)
  bool complete() const { return ensure && save && initialized; }
};

template <class F>
F lookup(const char *name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

PythonApi python_api() {
  PythonApi api;
  api.initialized = lookup<InitializedFn>("Py_IsInitialized");
  if (api.initialized == nullptr) return api;
  api.ensure = lookup<EnsureFn>("PyGILState_Ensure");
  api.save = lookup<SaveFn>("PyEval_SaveThread");
  api.finalizing = lookup<FinalizingFn>("Py_IsFinalizing");
  if (api.finalizing == nullptr) api.finalizing = lookup<FinalizingFn>("_Py_IsFinalizing");
  return api;
}

bool pin_wanted() {
  const char *value = std::getenv("CTPSHIM_NATIVE_PIN");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

// Looked up once (a trivially destructible static: nothing runs at process exit).
const PythonApi &cached_api() {
  static const PythonApi api = python_api();
  return api;
}

}  // namespace

bool PythonPin::interpreter_exiting() const {
  if (!saw_python_) return false;
  const PythonApi &api = cached_api();
  return !api.initialized() || (api.finalizing != nullptr && api.finalizing());
}

void PythonPin::enter() {
  if (tstate_ != nullptr) return;
  const PythonApi &api = cached_api();
  if (api.initialized == nullptr || !api.initialized()) return;
  saw_python_ = true;
  if (!pin_wanted() || !api.complete()) return;
  api.ensure();  // the thread's own state, made once; its PyGILState_STATE is never needed again
  tstate_ = api.save();
}

void PythonPin::leave() { tstate_ = nullptr; }

}  // namespace ctpshim
