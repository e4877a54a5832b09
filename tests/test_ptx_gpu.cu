// kernels/ptx.h's instructions on a GPU (tests/run_gpu.sh): test_ptx_emu.cpp's checks without its planted bugs, so
// that the fragment layouts, cp.async's groups and the copy engine's swizzle patterns the emulation follows are
// checked against the device once. A GPU build only.
#define REPRISE_PTX_ON_GPU 1
#include "tests/test_ptx_emu.cpp"
