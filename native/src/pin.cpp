#include "pin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace ctpshim {
namespace {

using EnsureFn = int (*)();
using ReleaseFn = void (*)(int);
using SaveFn = void *(*)();
using RestoreFn = void (*)(void *);
using InitializedFn = int (*)();

struct PythonApi {
  EnsureFn ensure = nullptr;
  ReleaseFn release = nullptr;
  SaveFn save = nullptr;
  RestoreFn restore = nullptr;
  InitializedFn initialized = nullptr;
  bool complete() const { return ensure && release && save && restore && initialized; }
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
  api.release = lookup<ReleaseFn>("PyGILState_Release");
  api.save = lookup<SaveFn>("PyEval_SaveThread");
  api.restore = lookup<RestoreFn>("PyEval_RestoreThread");
  return api;
}

bool pin_wanted() {
  const char *value = std::getenv("CTPSHIM_NATIVE_PIN");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

}  // namespace

void PythonPin::enter() {
  if (tstate_ != nullptr || !pin_wanted()) return;
  const PythonApi api = python_api();
  if (!api.complete() || !api.initialized()) return;
  gstate_ = api.ensure();
  tstate_ = api.save();
}

void PythonPin::leave() {
  if (tstate_ == nullptr) return;
  const PythonApi api = python_api();
  void *tstate = tstate_;
  tstate_ = nullptr;
  if (!api.complete() || !api.initialized()) return;  // the interpreter is gone: nothing to give back
  api.restore(tstate);
  api.release(gstate_);
}

}  // namespace ctpshim
