// Keeping one Python thread state on the library's callback thread (NATIVE_PROBE.md, "pin").
//
// When libpython is in the process, a binding's callback (a SWIG director, pybind11) takes the GIL
// with PyGILState_Ensure on our thread.  Without a thread state of its own there, every call
// creates and destroys one (an mmap/munmap pair, ~7 us).  The callback thread therefore makes one
// at its start and keeps it (released, PyEval_SaveThread) until it ends.  The functions are found
// with dlsym(RTLD_DEFAULT): the library never links against libpython, and in a process without
// Python the pin is simply off.  CTPSHIM_NATIVE_PIN=0 switches it off.
#ifndef CTPSHIM_NATIVE_PIN_H
#define CTPSHIM_NATIVE_PIN_H

namespace ctpshim {

class PythonPin {
 public:
  // Pins the calling thread (a no-op without Python, or with CTPSHIM_NATIVE_PIN=0).
  void enter();
  // Gives the thread state back (only while the interpreter is still initialised).
  void leave();
  bool active() const { return tstate_ != nullptr; }
  // True once the interpreter that was running when enter() was called is finalizing or gone:
  // the program's Spi objects may already be freed (a binding deletes its directors), so no
  // callback may be made any more.  Always false in a process without Python.
  bool interpreter_exiting() const;

 private:
  int gstate_ = 0;
  void *tstate_ = nullptr;
  bool saw_python_ = false;
};

}  // namespace ctpshim

#endif  // CTPSHIM_NATIVE_PIN_H
