// Whether kernels go out with programmatic dependent launch (launch.h's REPRISE_LAUNCH_PDL), decided once.
#include "kernels/launch.h"

#include <stdlib.h>
#include <string.h>

#ifdef __CUDACC__
static int pdl_state = -1;   // unknown yet (a plain int: every thread that races to decide decides the same)

int reprise_pdl_enabled() {
    if (pdl_state < 0) {
        const char *e = getenv("REPRISE_PDL");
        int dev = 0, major = 0, on = !(e && !strcmp(e, "0"));
        if (on && (cudaGetDevice(&dev) != cudaSuccess ||
                   cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess || major < 9))
            on = 0;   // griddepcontrol is sm_90's: an older GPU launches as always
        pdl_state = on;
    }
    return pdl_state;
}
#endif
