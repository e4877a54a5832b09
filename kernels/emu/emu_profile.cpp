// The emulation's launch counters: with REPRISE_EMU_PROFILE=FILE (or emu_profile_open), one JSON line per kernel
// launch, copy, memset, library call and graph launch, in the order the host issues them.
//
// A line says what a GPU profiler's launch table would: a kernel's name, grid, block, dynamic shared memory, CTAs
// and threads; a copy's direction and bytes; a graph's nodes by kind and whether it was captured (or updated) anew
// since its last launch, followed by a line for each of its nodes marked with the graph's number. Work recorded
// while a stream captures is not a launch: it is counted when its graph launches. Counting never changes what runs.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "kernels/emu/emu_control.h"
#include "kernels/emu/emu_internal.h"

namespace emu {

namespace {

std::mutex profile_mu;
FILE *profile_file = nullptr;
bool profile_checked = false;
unsigned long long graph_launches = 0;

// The file, opened at the first use from REPRISE_EMU_PROFILE (under profile_mu).
FILE *profile_out() {
    if (!profile_checked) {
        profile_checked = true;
        const char *path = getenv("REPRISE_EMU_PROFILE");
        if (path && *path && !(profile_file = fopen(path, "a")))
            fatal("REPRISE_EMU_PROFILE=%s: cannot open it for appending", path);
    }
    return profile_file;
}

std::string json_text(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if ((unsigned char)c < 0x20) out += ' ';
        else out += c;
    }
    return out + "\"";
}

const char *copy_kind_name(int kind) {
    switch (kind) {
    case cudaMemcpyHostToDevice: return "h2d";
    case cudaMemcpyDeviceToHost: return "d2h";
    case cudaMemcpyDeviceToDevice: return "d2d";
    case cudaMemcpyHostToHost: return "h2h";
    default: return "default";
    }
}

// The kind a graph's node count files it under: kernel, memcpy_h2d, memcpy_d2d, memcpy_d2h, memset, library.
std::string node_kind(const op &o) {
    switch (o.kind) {
    case op::KERNEL: return "kernel";
    case op::MEMCPY: return std::string("memcpy_") + copy_kind_name(o.copy_kind);
    case op::MEMSET: return "memset";
    default: return "library";
    }
}

void write_op(FILE *f, const op &o, int device, unsigned long long graph) {
    std::string line = "{\"launch\":\"" + node_kind(o) + "\",\"name\":" + json_text(o.name) + ",\"device\":" +
                       std::to_string(device);
    if (o.kind == op::KERNEL) {
        unsigned long long ctas = (unsigned long long)o.grid.x * o.grid.y * o.grid.z;
        unsigned long long threads = (unsigned long long)o.block.x * o.block.y * o.block.z;
        char buf[256];
        snprintf(buf, sizeof buf, ",\"grid\":[%u,%u,%u],\"block\":[%u,%u,%u],\"smem\":%zu,\"ctas\":%llu,\"threads\":%llu",
                 o.grid.x, o.grid.y, o.grid.z, o.block.x, o.block.y, o.block.z, o.smem, ctas, threads);
        line += buf;
    } else if (o.kind == op::MEMCPY || o.kind == op::MEMSET) {
        line += ",\"bytes\":" + std::to_string(o.bytes);
    }
    if (graph) line += ",\"graph\":" + std::to_string(graph);
    line += "}\n";
    fputs(line.c_str(), f);
}

}   // namespace

void profile_launch(const op &o, int device) {
    std::lock_guard<std::mutex> g(profile_mu);
    if (FILE *f = profile_out()) write_op(f, o, device, 0), fflush(f);
}

bool profile_open() {
    std::lock_guard<std::mutex> g(profile_mu);
    return profile_out() != nullptr;
}

void profile_line(const std::string &line) {
    std::lock_guard<std::mutex> g(profile_mu);
    if (FILE *f = profile_out()) fputs(line.c_str(), f), fputc('\n', f), fflush(f);
}

void profile_graph(const std::vector<op> &ops, bool fresh, int device) {
    std::lock_guard<std::mutex> g(profile_mu);
    FILE *f = profile_out();
    if (!f) return;
    unsigned long long id = ++graph_launches;
    int n[6] = {0};   // kernel, memcpy_h2d, memcpy_d2d, memcpy_d2h, memset, library (and other copies)
    for (const op &o : ops) {
        std::string k = node_kind(o);
        n[k == "kernel" ? 0 : k == "memcpy_h2d" ? 1 : k == "memcpy_d2d" ? 2 : k == "memcpy_d2h" ? 3 : k == "memset" ? 4 : 5]++;
    }
    fprintf(f, "{\"launch\":\"graph\",\"graph\":%llu,\"device\":%d,\"new\":%s,\"nodes\":%zu,\"kernel\":%d,\"memcpy_h2d\":%d,"
               "\"memcpy_d2d\":%d,\"memcpy_d2h\":%d,\"memset\":%d,\"other\":%d}\n",
            id, device, fresh ? "true" : "false", ops.size(), n[0], n[1], n[2], n[3], n[4], n[5]);
    for (const op &o : ops) write_op(f, o, device, id);
    fflush(f);
}

}   // namespace emu

extern "C" int emu_profile_open(const char *path) {
    std::lock_guard<std::mutex> g(emu::profile_mu);
    if (emu::profile_file) fclose(emu::profile_file);
    emu::profile_checked = true;
    emu::profile_file = path ? fopen(path, "w") : nullptr;
    return path && !emu::profile_file ? -1 : 0;
}
