#!/usr/bin/python3
"""A measuring RFB viewer for tests/boot/wayland-bench.sh: it connects to a
Unix socket (or tcp:PORT on loopback), speaks RFB 3.8 without
authentication, asks for 32-bit B,G,R,x pixels and the encodings ZRLE then
Raw (SetEncodings [16, 0]), and takes commands on stdin, one per line,
answering one line each on stdout ("ok ..." or "error ..."):

  key SYM                 a key (X keysym, hex) pressed and released; the
                          updates it brings are drained (until 0.7 s quiet)
  clicks N X Y BUTTON KEY N rounds of: the pointer moved to (X, Y), updates
                          drained until 0.7 s quiet, a click of BUTTON (1
                          left, 3 right), updates requested as fast as they
                          come until 0.7 s quiet (at most 6 s); then KEY
                          (keysym) to undo the change, drained again.
                          Answers "ok clicks enc=E first=MS,... whole=MS,...
                          px=N,...": per round, the time from the click to
                          the end of the first FramebufferUpdate that
                          changed pixels, to the end of the last one that
                          did (the change wholly shown), and the pixels it
                          changed in all
  stream SECONDS PID,... [COUNTFILE]
                          incremental updates requested as fast as they come
                          for SECONDS (one request outstanding, the next
                          sent when an update has been read): "ok stream
                          enc=E updates=U bytes=B secs=S changes=C cpu=PID:TICKS,..."
                          with C the lines COUNTFILE gained and TICKS the utime+stime (clock ticks) of each
                          PID over the same interval (/proc/PID/stat)
                          (the last measure: its updates are not decoded)
  quit                    closes the connection

Times are taken when the last byte of an update has been read; the pixels
are decoded afterwards, so decoding in Python is not in the figures.
`rfb_bench.py x11-root #RRGGBB` instead sets the X root window's colour;
`rfb_bench.py change x11|gnome PAUSE STOPFILE COUNTFILE COLOUR...` changes
the whole screen's colour in turn until STOPFILE exists (see change()).
The first line it prints is "ok WIDTHxHEIGHT NAME" after the handshake.
Only the Python standard library.
"""
import os
import select
import socket
import struct
import sys
import time
import zlib

ENC_NAMES = {0: "Raw", 16: "ZRLE"}
QUIET = 0.7


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime stime (fields 14, 15)


class Viewer:
    def __init__(self, target):
        if target.startswith("tcp:"):
            self.s = socket.create_connection(("127.0.0.1", int(target[4:])), timeout=30)
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(30)
            self.s.connect(target)
        self.buf = bytearray()
        self.nbytes = 0
        version = self.recv_exact(12)
        if not version.startswith(b"RFB 003."):
            raise ValueError("not RFB: %r" % version)
        self.s.sendall(b"RFB 003.008\n")
        n = self.recv_exact(1)[0]
        if n == 0:
            ln = struct.unpack(">I", self.recv_exact(4))[0]
            raise ValueError("refused: %s" % self.recv_exact(ln).decode("latin-1"))
        types = self.recv_exact(n)
        if 1 not in types:
            raise ValueError("no None security type: %r" % list(types))
        self.s.sendall(b"\x01")
        if struct.unpack(">I", self.recv_exact(4))[0] != 0:
            raise ValueError("security result: failed")
        self.s.sendall(b"\x01")  # shared
        w, h = struct.unpack(">HH", self.recv_exact(4))
        self.recv_exact(16)
        ln = struct.unpack(">I", self.recv_exact(4))[0]
        self.name = self.recv_exact(ln).decode("latin-1")
        self.w, self.h = w, h
        self.fb = bytearray(w * h * 3)  # B,G,R per pixel
        pf = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        self.s.sendall(b"\x00\x00\x00\x00" + pf)
        self.s.sendall(struct.pack(">BxHii", 2, 2, 16, 0))  # SetEncodings [ZRLE, Raw]
        self.z = zlib.decompressobj()
        self.encs = set()
        self.pending = []   # updates read, not yet decoded: [(time, rects)]
        self.outstanding = False
        self.stale = False

    # --- reading -----------------------------------------------------------
    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.nbytes += n
        return out

    def readable(self, timeout):
        if self.buf:
            return True
        return bool(select.select([self.s], [], [], max(0.0, timeout))[0])

    def request(self, incremental=1):
        self.s.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0, self.w, self.h))
        self.outstanding = True

    def read_update(self, timeout):
        """The next FramebufferUpdate read whole (its rectangles undecoded)
        and the time its last byte came, or None after timeout seconds."""
        end = time.monotonic() + timeout
        while True:
            if not self.readable(end - time.monotonic()):
                return None
            t = self.recv_exact(1)[0]
            if t == 0:
                n = struct.unpack(">xH", self.recv_exact(3))[0]
                rects = []
                for _ in range(n):
                    x, y, w, h, enc = struct.unpack(">HHHHi", self.recv_exact(12))
                    if enc == 0:
                        data = self.recv_exact(w * h * 4)
                    elif enc == 16:
                        ln = struct.unpack(">I", self.recv_exact(4))[0]
                        data = self.recv_exact(ln)
                    else:
                        raise ValueError("encoding %d, asked ZRLE and Raw only" % enc)
                    self.encs.add(enc)
                    rects.append((x, y, w, h, enc, data))
                self.outstanding = False
                return time.monotonic(), rects
            elif t == 1:  # SetColourMapEntries
                n = struct.unpack(">3xH", self.recv_exact(5))[0]
                self.recv_exact(6 * n)
            elif t == 2:  # Bell
                continue
            elif t == 3:  # ServerCutText
                ln = struct.unpack(">3xI", self.recv_exact(7))[0]
                self.recv_exact(ln)
            else:
                raise ValueError("unexpected server message %d" % t)

    def enc_name(self):
        return "+".join(ENC_NAMES[e] for e in sorted(self.encs, reverse=True)) or "none"

    # --- decoding ----------------------------------------------------------
    def apply(self, rects):
        """Decodes the rectangles into the framebuffer; the number of pixels changed."""
        changed = 0
        for x, y, w, h, enc, data in rects:
            if enc == 0:
                px = bytearray(w * h * 3)
                px[0::3] = data[0::4]
                px[1::3] = data[1::4]
                px[2::3] = data[2::4]
                changed += self.put(x, y, w, h, px)
            else:
                raw = self.z.decompress(data)
                changed += self.zrle(x, y, w, h, raw)
        return changed

    def put(self, x, y, w, h, px):
        changed = 0
        fb, W = self.fb, self.w
        for row in range(h):
            o = ((y + row) * W + x) * 3
            new = px[row * w * 3:(row + 1) * w * 3]
            old = fb[o:o + w * 3]
            if new != old:
                changed += sum(1 for i in range(0, w * 3, 3) if new[i:i + 3] != old[i:i + 3])
                fb[o:o + w * 3] = new
        return changed

    def zrle(self, rx, ry, rw, rh, d):
        p = 0
        changed = 0
        for ty in range(ry, ry + rh, 64):
            th = min(64, ry + rh - ty)
            for tx in range(rx, rx + rw, 64):
                tw = min(64, rx + rw - tx)
                n = tw * th
                sub = d[p]
                p += 1
                if sub == 0:
                    px = d[p:p + 3 * n]
                    p += 3 * n
                elif sub == 1:
                    px = d[p:p + 3] * n
                    p += 3
                elif 2 <= sub <= 16:
                    pal = [d[p + 3 * i:p + 3 * i + 3] for i in range(sub)]
                    p += 3 * sub
                    bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                    per = 8 // bits
                    mask = (1 << bits) - 1
                    out = []
                    rowbytes = (tw * bits + 7) // 8
                    for _ in range(th):
                        for i in range(tw):
                            b = d[p + i // per]
                            out.append(pal[(b >> (8 - bits * (i % per + 1))) & mask])
                        p += rowbytes
                    px = b"".join(out)
                elif sub == 128 or sub >= 130:
                    pal = None
                    if sub >= 130:
                        pal = [d[p + 3 * i:p + 3 * i + 3] for i in range(sub - 128)]
                        p += 3 * (sub - 128)
                    out = []
                    left = n
                    while left > 0:
                        if pal is None:
                            c = d[p:p + 3]
                            p += 3
                            run = True
                        else:
                            i = d[p]
                            p += 1
                            c = pal[i & 127]
                            run = bool(i & 128)
                        ln = 1
                        if run:
                            while True:
                                b = d[p]
                                p += 1
                                ln += b
                                if b != 255:
                                    break
                        out.append(c * ln)
                        left -= ln
                    px = b"".join(out)
                else:
                    raise ValueError("ZRLE subencoding %d" % sub)
                changed += self.put(tx, ty, tw, th, px)
        return changed

    # --- measuring ---------------------------------------------------------
    def catch_up(self):
        if self.stale:
            raise ValueError("pixels after a stream: stream must be the last measure")
        for _, rects in self.pending:
            self.apply(rects)
        self.pending = []

    def drain(self, quiet=QUIET, most=10.0, decode=True):
        """Updates requested and read until none for `quiet` seconds."""
        end = time.monotonic() + most
        while time.monotonic() < end:
            if not self.outstanding:
                self.request()
            u = self.read_update(quiet)
            if u is None:
                break
            if decode:
                self.pending.append(u)
        if decode:
            self.catch_up()

    def pointer(self, mask, x, y):
        self.s.sendall(struct.pack(">BBHH", 5, mask, x, y))

    def key(self, sym):
        self.s.sendall(struct.pack(">BBxxI", 4, 1, sym))
        self.s.sendall(struct.pack(">BBxxI", 4, 0, sym))

    def click_round(self, x, y, button, undo):
        self.pointer(0, x, y)
        self.drain()
        mask = 1 << (button - 1)
        if not self.outstanding:
            self.request()
        t0 = time.monotonic()
        self.pointer(mask, x, y)
        self.pointer(0, x, y)
        got = []
        end = t0 + 6.0
        while time.monotonic() < end:
            if not self.outstanding:
                self.request()
            u = self.read_update(QUIET)
            if u is None:
                break
            got.append(u)
        first = whole = None
        total = 0
        for t, rects in got:
            c = self.apply(rects)
            if c:
                total += c
                if first is None:
                    first = t - t0
                whole = t - t0
        self.key(undo)
        self.drain()
        return first, whole, total

    def stream(self, secs, pids, count):
        # undecoded from here on: decoding whole-screen changes in Python
        # took seconds, during which the server's updates waited
        self.catch_up()
        self.stale = True
        self.drain(quiet=0.2, most=2.0, decode=False)
        n0 = lines(count)
        c0 = {p: cpu_ticks(p) for p in pids}
        b0 = self.nbytes
        t0 = time.monotonic()
        end = t0 + secs
        n = 0
        while True:
            if not self.outstanding:
                self.request()
            u = self.read_update(end - time.monotonic())
            if u is None:
                break
            n += 1
            if u[0] >= end:
                break
        t1 = time.monotonic()
        cpu = {p: cpu_ticks(p) - c0[p] for p in pids}
        changes = lines(count) - n0
        nbytes = self.nbytes - b0
        return n, nbytes, t1 - t0, cpu, changes


def lines(path):
    if not path:
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def ms(v):
    return "-" if v is None else "%.1f" % (v * 1000)


class X11Root:
    """The X root window's background (as `xsetroot -solid`; the root has no
    xsetroot): libX11 through ctypes, on $DISPLAY (24-bit TrueColor)."""

    def __init__(self):
        import ctypes
        x = ctypes.CDLL("libX11.so.6")
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XSetWindowBackground.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
        x.XClearWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x.XFlush.argtypes = [ctypes.c_void_p]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.x = x
        self.d = x.XOpenDisplay(None)
        if not self.d:
            raise OSError("cannot open display %s" % os.environ.get("DISPLAY"))
        self.root = x.XDefaultRootWindow(self.d)

    def set(self, colour):
        self.x.XSetWindowBackground(self.d, self.root, int(colour.lstrip("#"), 16))
        self.x.XClearWindow(self.d, self.root)
        self.x.XFlush(self.d)


class GnomeBackground:
    """GNOME's background colour (gsettings primary-color) through Gio."""

    def __init__(self):
        from gi.repository import Gio
        self.gio = Gio
        self.s = Gio.Settings.new("org.gnome.desktop.background")

    def set(self, colour):
        self.s.set_string("primary-color", colour)
        self.gio.Settings.sync()


def change(kind, pause, stop, count, colours):
    """`rfb_bench.py change x11|gnome PAUSE STOPFILE COUNTFILE COLOUR...`:
    the whole screen's colour changed to each COLOUR in turn, PAUSE seconds
    apart, until STOPFILE exists; a line appended to COUNTFILE per change.
    One process throughout, so that both desktops get the same rate."""
    target = X11Root() if kind == "x11" else GnomeBackground()
    with open(count, "a") as out:
        i = 0
        while not os.path.exists(stop):
            target.set(colours[i % len(colours)])
            out.write("%.3f\n" % time.monotonic())
            out.flush()
            i += 1
            time.sleep(pause)


def main():
    if sys.argv[1] == "x11-root":
        X11Root().set(sys.argv[2])
        return
    if sys.argv[1] == "change":
        change(sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:])
        return
    v = Viewer(sys.argv[1])
    # the first whole screen
    v.request(0)
    u = v.read_update(30)
    if u is None:
        raise ValueError("no first frame in 30 s")
    v.apply(u[1])
    print("ok %dx%d %s" % (v.w, v.h, v.name), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            cmd = words[0]
            if cmd == "key":
                v.key(int(words[1], 0))
                v.drain()
                print("ok", flush=True)
            elif cmd == "clicks":
                n, x, y, button = (int(w) for w in words[1:5])
                undo = int(words[5], 0)
                res = [v.click_round(x, y, button, undo) for _ in range(n)]
                print("ok clicks enc=%s first=%s whole=%s px=%s" % (
                    v.enc_name(),
                    ",".join(ms(r[0]) for r in res),
                    ",".join(ms(r[1]) for r in res),
                    ",".join(str(r[2]) for r in res)), flush=True)
            elif cmd == "stream":
                pids = [int(p) for p in words[2].split(",")] if len(words) > 2 else []
                v.encs = set()
                n, nbytes, secs, cpu, changes = v.stream(
                    float(words[1]), pids, words[3] if len(words) > 3 else None)
                print("ok stream enc=%s updates=%d bytes=%d secs=%.3f changes=%d cpu=%s" % (
                    v.enc_name(), n, nbytes, secs, changes,
                    ",".join("%d:%d" % (p, c) for p, c in cpu.items())), flush=True)
            elif cmd == "quit":
                v.s.close()
                print("ok", flush=True)
                return
            else:
                print("error unknown command %s" % cmd, flush=True)
        except Exception as e:  # noqa: BLE001 - reported to the bench
            print("error %s: %s" % (type(e).__name__, e), flush=True)
            return


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        print("error %s: %s" % (type(e).__name__, e), flush=True)
        sys.exit(1)
