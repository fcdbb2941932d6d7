#!/usr/bin/python3
"""A raw RFB viewer for the Wayland boot test: it connects to a Unix socket
(Accord's screen server, or `accord connect`'s loopback port with tcp:PORT),
speaks RFB 3.8 without authentication, asks for Raw pixels in 32-bit
B,G,R,x, and takes commands on stdin, one per line, answering one line each
on stdout ("ok ..." or "error ..."):

  frame PATH     a whole-screen update, written as a PPM image to PATH
  click X Y      left button pressed and released at (X, Y)
  key SYM        a key (X keysym, hex like 0xff1b) pressed and released
  press SYM      a key pressed and left down
  cut HEX        ClientCutText with these bytes (Latin-1, as RFB says)
  cutwait S      the next ServerCutText within S seconds: "ok cut HEX", or
                 "ok nocut" when none came
  quit           closes the connection

The first line it prints is "ok WIDTHxHEIGHT NAME" after the handshake.
Only the Python standard library: the container has no PIL.
"""
import socket
import struct
import sys


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("the server closed the connection")
        buf += chunk
    return bytes(buf)


class Viewer:
    def __init__(self, target):
        if target.startswith("tcp:"):
            self.s = socket.create_connection(("127.0.0.1", int(target[4:])), timeout=30)
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(30)
            self.s.connect(target)
        version = recv_exact(self.s, 12)
        if not version.startswith(b"RFB 003."):
            raise ValueError("not RFB: %r" % version)
        self.s.sendall(b"RFB 003.008\n")
        n = recv_exact(self.s, 1)[0]
        if n == 0:
            ln = struct.unpack(">I", recv_exact(self.s, 4))[0]
            raise ValueError("refused: %s" % recv_exact(self.s, ln).decode("latin-1"))
        types = recv_exact(self.s, n)
        if 1 not in types:
            raise ValueError("no None security type: %r" % list(types))
        self.s.sendall(b"\x01")
        if struct.unpack(">I", recv_exact(self.s, 4))[0] != 0:
            raise ValueError("security result: failed")
        self.s.sendall(b"\x01")  # shared
        w, h = struct.unpack(">HH", recv_exact(self.s, 4))
        recv_exact(self.s, 16)  # its pixel format
        ln = struct.unpack(">I", recv_exact(self.s, 4))[0]
        self.name = recv_exact(self.s, ln).decode("latin-1")
        self.w, self.h = w, h
        self.fb = bytearray(w * h * 4)
        self.cuts = []
        # 32 bpp, depth 24, little endian, true colour, max 255, shifts R16 G8 B0
        pf = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        self.s.sendall(b"\x00\x00\x00\x00" + pf)
        self.s.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings [Raw]

    def request(self, incremental):
        self.s.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0, self.w, self.h))

    def read_update(self):
        """Reads messages until a FramebufferUpdate; returns its rectangle count."""
        while True:
            t = recv_exact(self.s, 1)[0]
            if t == 0:
                n = struct.unpack(">xH", recv_exact(self.s, 3))[0]
                for _ in range(n):
                    x, y, w, h, enc = struct.unpack(">HHHHi", recv_exact(self.s, 12))
                    if enc != 0:
                        raise ValueError("encoding %d, asked Raw only" % enc)
                    data = recv_exact(self.s, w * h * 4)
                    for row in range(h):
                        o = ((y + row) * self.w + x) * 4
                        self.fb[o:o + w * 4] = data[row * w * 4:(row + 1) * w * 4]
                return n
            elif t == 2:  # Bell
                continue
            elif t == 3:  # ServerCutText, kept for cutwait
                ln = struct.unpack(">3xI", recv_exact(self.s, 7))[0]
                self.cuts.append(recv_exact(self.s, ln))
            else:
                raise ValueError("unexpected server message %d" % t)

    def write_ppm(self, path):
        rgb = bytearray(self.w * self.h * 3)
        rgb[0::3] = self.fb[2::4]
        rgb[1::3] = self.fb[1::4]
        rgb[2::3] = self.fb[0::4]
        with open(path, "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (self.w, self.h))
            f.write(rgb)

    def pointer(self, mask, x, y):
        self.s.sendall(struct.pack(">BBHH", 5, mask, x, y))

    def cut(self, text):
        self.s.sendall(struct.pack(">BxxxI", 6, len(text)) + text)

    def cut_wait(self, seconds):
        """The next ServerCutText within `seconds`, or None; updates that
        come meanwhile are read (none is asked for)."""
        old = self.s.gettimeout()
        self.s.settimeout(seconds)
        try:
            while not self.cuts:
                try:
                    self.read_update()
                except socket.timeout:
                    # read_update keeps reading past a ServerCutText, for
                    # an update that was never asked
                    break
        finally:
            self.s.settimeout(old)
        return self.cuts.pop(0) if self.cuts else None

    def key(self, down, sym):
        self.s.sendall(struct.pack(">BBxxI", 4, 1 if down else 0, sym))


def main():
    v = Viewer(sys.argv[1])
    print("ok %dx%d %s" % (v.w, v.h, v.name), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            cmd = words[0]
            if cmd == "frame":
                v.request(0)
                v.read_update()
                v.write_ppm(words[1])
                print("ok %d %d" % (v.w, v.h), flush=True)
            elif cmd == "click":
                x, y = int(words[1]), int(words[2])
                v.pointer(0, x, y)
                v.pointer(1, x, y)
                v.pointer(0, x, y)
                print("ok", flush=True)
            elif cmd in ("key", "press"):
                sym = int(words[1], 0)
                v.key(True, sym)
                if cmd == "key":
                    v.key(False, sym)
                print("ok", flush=True)
            elif cmd == "cut":
                v.cut(bytes.fromhex(words[1]))
                print("ok", flush=True)
            elif cmd == "cutwait":
                got = v.cut_wait(float(words[1]))
                print("ok nocut" if got is None else "ok cut %s" % got.hex(), flush=True)
            elif cmd == "quit":
                v.s.close()
                print("ok", flush=True)
                return
            else:
                print("error unknown command %s" % cmd, flush=True)
        except Exception as e:  # noqa: BLE001 - reported to the test
            print("error %s: %s" % (type(e).__name__, e), flush=True)
            return


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        print("error %s: %s" % (type(e).__name__, e), flush=True)
        sys.exit(1)
