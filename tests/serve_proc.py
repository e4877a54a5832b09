"""reprise serve started for a test on a free port: the process and the port, once the server says it is ready."""
import re
import subprocess


def start(binary, *args):
    p = subprocess.Popen([binary, "serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        port = port or (m and m.group(1))
        if "ready:" in line:
            break
    return p, port
