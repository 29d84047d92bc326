// Keeping one Python thread state on the library's callback thread (NATIVE_PROBE.md, "pin").
//
// When libpython is in the process, a binding's callback (a SWIG director, pybind11) takes the GIL
// with PyGILState_Ensure on our thread.  Without a thread state of its own there, every call
// creates and destroys one (an mmap/munmap pair, ~7 us).  The callback thread therefore makes one
// at its start (PyGILState_Ensure) and keeps it (released, PyEval_SaveThread) for good.  The functions are found
// with dlsym(RTLD_DEFAULT): the library never links against libpython, and in a process without
// Python the pin is simply off.  CTPSHIM_NATIVE_PIN=0 switches it off.
#ifndef CTPSHIM_NATIVE_PIN_H
#define CTPSHIM_NATIVE_PIN_H

namespace ctpshim {

class PythonPin {
 public:
  // Pins the calling thread (a no-op without Python, or with CTPSHIM_NATIVE_PIN=0).
  void enter();
  // Forgets the thread state without giving it back: the interpreter frees it at finalization.
  // Giving it back needs the GIL, which the thread calling Release() may hold (vnpy's wrapper
  // does), and during finalization CPython ends a thread that asks for the GIL.  The cost is one
  // thread state (a few KB) per released API object.
  void leave();
  bool active() const { return tstate_ != nullptr; }
  // True once the interpreter that was running when enter() was called is finalizing or gone:
  // the program's Spi objects may already be freed (a binding deletes its directors), so no
  // callback may be made any more.  Always false in a process without Python.
  bool interpreter_exiting() const;

 private:
  void *tstate_ = nullptr;
  bool saw_python_ = false;
};

}  // namespace ctpshim

#endif  // CTPSHIM_NATIVE_PIN_H
