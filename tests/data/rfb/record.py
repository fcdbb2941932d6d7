#!/usr/bin/env python3
"""Records what a real VNC server sends a viewer, for the framer's tests.

Starts a private X display (Xvfb + x11vnc, or Xtigervnc), puts an xterm
printing text, an ImageMagick `display` window (a plasma image: photo-like
content for JPEG/gradient paths) and a moving window on it, connects as a
plain RFB 3.8 viewer (security None), announces ONE encoding plus the
pseudo-encodings Accord lets through, asks for updates every 40 ms while the
screen changes and the clipboard and PRIMARY selection are set twice with
xclip (so the recording holds real ServerCutText messages), then writes:

    16 bytes   the pixel format in force for every update (ServerInit's,
               or the one this script sent with SetPixelFormat first)
    the rest   every byte the server sent after ServerInit, unmodified

Usage: record.py SERVER ENCODING OUT [--bpp 8|16|32] [--seconds N]
       SERVER = x11vnc | xvnc; ENCODING = raw | hextile | tight | zrle
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import time

ENCODINGS = {"raw": 0, "hextile": 5, "tight": 7, "zrle": 16}
# Cursor, DesktopSize, LastRect, ExtendedDesktopSize, DesktopName,
# Tight quality 6 (JPEG allowed) and compression level 6.
PSEUDO = [-239, -223, -224, -308, -307, -26, -250]
GEOMETRY = (640, 400)


def free_display():
    for n in range(40, 99):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    sys.exit("no free X display number")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise EOFError("server closed during handshake")
        buf += part
    return buf


def connect(port, deadline=15.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def handshake(sock):
    """RFB 3.8, security None; returns the ServerInit pixel format bytes."""
    version = recv_exact(sock, 12)
    if not version.startswith(b"RFB 003."):
        raise ValueError(f"not RFB: {version!r}")
    sock.sendall(b"RFB 003.008\n")
    (n,) = struct.unpack("B", recv_exact(sock, 1))
    types = recv_exact(sock, n)
    if 1 not in types:
        raise ValueError(f"server does not offer security None: {list(types)}")
    sock.sendall(b"\x01")
    (result,) = struct.unpack(">I", recv_exact(sock, 4))
    if result != 0:
        raise ValueError("security None refused")
    sock.sendall(b"\x01")  # shared
    init = recv_exact(sock, 24)
    (name_len,) = struct.unpack(">I", init[20:24])
    recv_exact(sock, name_len)
    return init[4:20]


def pixel_format(bpp):
    """True-colour formats for 8 (BGR233), 16 (RGB565) bpp, little-endian."""
    if bpp == 8:
        return struct.pack(">BBBBHHHBBBxxx", 8, 8, 0, 1, 7, 7, 3, 0, 3, 6)
    if bpp == 16:
        return struct.pack(">BBBBHHHBBBxxx", 16, 16, 0, 1, 31, 63, 31, 11, 5, 0)
    raise ValueError(bpp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server", choices=["x11vnc", "xvnc"])
    ap.add_argument("encoding", choices=sorted(ENCODINGS))
    ap.add_argument("out")
    ap.add_argument("--bpp", type=int, default=32, choices=[8, 16, 32])
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()

    disp = free_display()
    port = free_port()
    env = dict(os.environ, DISPLAY=f":{disp}")
    procs = []

    def spawn(*cmd):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    w, h = GEOMETRY
    try:
        if args.server == "x11vnc":
            spawn("Xvfb", f":{disp}", "-screen", "0", f"{w}x{h}x24", "-nolisten", "tcp")
            time.sleep(1.0)
            spawn("x11vnc", "-display", f":{disp}", "-rfbport", str(port), "-localhost",
                  "-nopw", "-shared", "-forever", "-noxdamage", "-quiet")
        else:
            spawn("Xtigervnc", f":{disp}", "-geometry", f"{w}x{h}", "-depth", "24",
                  "-rfbport", str(port), "-localhost", "-SecurityTypes", "None",
                  "-nolisten", "tcp", "-AlwaysShared")
        time.sleep(1.0)
        subprocess.run(["xsetroot", "-solid", "steelblue"], env=env, check=False)
        spawn("openbox")
        spawn("xterm", "-geometry", "70x12+10+10", "-e", "sh", "-c",
              "while :; do date; ls -l /usr/bin | head -3; sleep 0.15; done")
        spawn("display", "-geometry", "+330+150", "-size", "240x160", "plasma:fractal")
        time.sleep(1.5)

        sock = connect(port)
        pf = handshake(sock)
        if args.bpp != 32:
            pf = pixel_format(args.bpp)
            sock.sendall(b"\x00\x00\x00\x00" + pf)
        encs = [ENCODINGS[args.encoding]] + PSEUDO
        sock.sendall(struct.pack(f">BxH{len(encs)}i", 2, len(encs), *encs))
        sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))

        data = bytearray()
        sock.settimeout(0.04)
        start = time.monotonic()
        events = [
            (0.8, ["xclip", "-selection", "clipboard"], b"Patient: DUPONT Marie, ne(e) le 01/02/1960"),
            (1.6, ["xclip", "-selection", "primary"], b"selected text on the clinician's screen"),
            (2.4, ["xdotool", "search", "--class", "xterm", "windowmove", "40", "60"], None),
            (3.0, ["xclip", "-selection", "clipboard"], "presse-papiers \u00e9t\u00e9 2".encode("latin-1")),
        ]
        while (now := time.monotonic() - start) < args.seconds:
            while events and events[0][0] <= now:
                _, cmd, text = events.pop(0)
                p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
                if text is not None:
                    p.stdin.write(text)
                p.stdin.close()
            try:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
            except socket.timeout:
                pass
            sock.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, w, h))
        # Let the last update finish arriving (the server is mid-message
        # when we stop asking); stop at the first quiet 0.5 s.
        sock.settimeout(0.5)
        try:
            while part := sock.recv(65536):
                data += part
        except socket.timeout:
            pass
        sock.close()
        with open(args.out, "wb") as f:
            f.write(pf)
            f.write(data)
        print(f"{args.out}: {len(data)} bytes from {args.server} ({args.encoding}, {pf[0]} bpp)")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
