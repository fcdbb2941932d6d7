#!/usr/bin/python3
"""tests/boot/mutter_probe.py: the boot test's own Mutter client (a stand-in
for what a technician sees and does), run inside the container as the session
user, with the user's DBUS_SESSION_BUS_ADDRESS.

At start: a RemoteDesktop session, a ScreenCast session tied to it
(remote-desktop-session-id), RecordMonitor of the monitor (CONNECTOR, default
'' = the primary one), Start(); waits (bounded) for PipeWireStreamAdded and
prints `node N`. Then reads commands on stdin, one a line, and answers each
with one line, `ok ...` or `err ...`:

  frame PATH     a PNG of the screen (gst-launch-1.0 pipewiresrc path=NODE)
  click X Y      pointer to (X, Y) of the stream, left button down and up
  key KEYSYM     a key pressed and released (X keysym: a name from the table
                 below, 0xff1b, or one character)
  clipread       the desktop's clipboard as UTF-8 text, printed as hex
                 (`ok clip HEX`; SelectionRead through this session's
                 clipboard, as any application pasting would get it)
  clipset HEX S  this session owns the clipboard with the UTF-8 text HEX
                 (as an application copying it would) and serves whoever
                 pastes it for S seconds (`ok clipset served N`)
  quit           stops the session and exits (end of stdin too)

The Mutter sessions live as long as this D-Bus connection: the process stays
up between commands.
usage: mutter_probe.py [CONNECTOR]
"""
import os
import select
import subprocess
import sys

from gi.repository import Gio, GLib

TEXT_MIME = "text/plain;charset=utf-8"

BUS_TIMEOUT_MS = 10000
RD = ("org.gnome.Mutter.RemoteDesktop", "/org/gnome/Mutter/RemoteDesktop")
SC = ("org.gnome.Mutter.ScreenCast", "/org/gnome/Mutter/ScreenCast")
BTN_LEFT = 0x110
KEYSYMS = {
    "Escape": 0xFF1B, "Return": 0xFF0D, "Tab": 0xFF09, "BackSpace": 0xFF08,
    "space": 0x20, "Super_L": 0xFFEB, "Left": 0xFF51, "Up": 0xFF52,
    "Right": 0xFF53, "Down": 0xFF54, "Home": 0xFF50, "End": 0xFF57,
}


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Probe:
    def __init__(self, connector):
        self.bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        self.node = None
        (self.rd,) = self.call(RD[0], RD[1], RD[0], "CreateSession", None, "(o)")
        rd_iface = RD[0] + ".Session"
        sid = self.call(RD[0], self.rd, "org.freedesktop.DBus.Properties", "Get",
                        GLib.Variant("(ss)", (rd_iface, "SessionId")), "(v)")[0]
        opts = GLib.Variant("(a{sv})", ({"remote-desktop-session-id": GLib.Variant("s", sid)},))
        (self.sc,) = self.call(SC[0], SC[1], SC[0], "CreateSession", opts, "(o)")
        (self.stream,) = self.call(SC[0], self.sc, SC[0] + ".Session", "RecordMonitor",
                                   GLib.Variant("(sa{sv})", (connector, {})), "(o)")
        self.bus.signal_subscribe(SC[0], SC[0] + ".Stream", "PipeWireStreamAdded",
                                  self.stream, None, Gio.DBusSignalFlags.NONE, self.on_node)
        self.rd_call("Start")
        ctx = GLib.MainContext.default()
        timed_out = []
        GLib.timeout_add(BUS_TIMEOUT_MS, lambda: timed_out.append(1) or False)
        while self.node is None and not timed_out:
            ctx.iteration(True)
        if self.node is None:
            raise RuntimeError("no PipeWireStreamAdded within %d ms" % BUS_TIMEOUT_MS)

    def on_node(self, _conn, _sender, _path, _iface, _signal, params):
        self.node = params.unpack()[0]

    def call(self, dest, path, iface, method, params, reply):
        r = self.bus.call_sync(dest, path, iface, method, params,
                               GLib.VariantType.new(reply) if reply else None,
                               Gio.DBusCallFlags.NONE, BUS_TIMEOUT_MS, None)
        return r.unpack() if r is not None else ()

    def rd_call(self, method, params=None):
        return self.call(RD[0], self.rd, RD[0] + ".Session", method, params, None)

    def frame(self, path):
        cmd = ["gst-launch-1.0", "-q", "pipewiresrc", "path=%d" % self.node, "num-buffers=3",
               "!", "videoconvert", "!", "pngenc", "snapshot=true", "!", "filesink",
               "location=" + path]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("gst-launch-1.0 exited %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-300:]))
        return path

    def click(self, x, y):
        self.rd_call("NotifyPointerMotionAbsolute", GLib.Variant("(sdd)", (self.stream, x, y)))
        self.rd_call("NotifyPointerButton", GLib.Variant("(ib)", (BTN_LEFT, True)))
        self.rd_call("NotifyPointerButton", GLib.Variant("(ib)", (BTN_LEFT, False)))

    def key(self, name):
        if name in KEYSYMS:
            sym = KEYSYMS[name]
        elif len(name) == 1:
            sym = ord(name)
        else:
            sym = int(name, 0)
        self.rd_call("NotifyKeyboardKeysym", GLib.Variant("(ub)", (sym, True)))
        self.rd_call("NotifyKeyboardKeysym", GLib.Variant("(ub)", (sym, False)))
        return sym

    def enable_clipboard(self):
        if not getattr(self, "clipboard", False):
            self.rd_call("EnableClipboard", GLib.Variant("(a{sv})", ({},)))
            self.clipboard = True

    def fd_call(self, method, params):
        """A call whose answer is one Unix fd (SelectionRead, SelectionWrite)."""
        r, fds = self.bus.call_with_unix_fd_list_sync(
            RD[0], self.rd, RD[0] + ".Session", method, params, GLib.VariantType.new("(h)"),
            Gio.DBusCallFlags.NONE, BUS_TIMEOUT_MS, None, None)
        return fds.get(r.unpack()[0])

    def clip_read(self):
        self.enable_clipboard()
        fd = self.fd_call("SelectionRead", GLib.Variant("(s)", (TEXT_MIME,)))
        data = b""
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 5)
                if not ready:
                    raise RuntimeError("the clipboard's owner wrote nothing in 5 s")
                chunk = os.read(fd, 65536)
                if not chunk:
                    return data
                data += chunk
        finally:
            os.close(fd)

    def clip_set(self, text, seconds):
        self.enable_clipboard()
        served = []

        def on_transfer(_conn, _sender, _path, _iface, _signal, params):
            _mime, serial = params.unpack()
            ok = True
            try:
                fd = self.fd_call("SelectionWrite", GLib.Variant("(u)", (serial,)))
                try:
                    os.write(fd, text)
                finally:
                    os.close(fd)
            except (GLib.Error, OSError):
                ok = False
            self.rd_call("SelectionWriteDone", GLib.Variant("(ub)", (serial, ok)))
            served.append(ok)

        sub_id = self.bus.signal_subscribe(RD[0], RD[0] + ".Session", "SelectionTransfer",
                                           self.rd, None, Gio.DBusSignalFlags.NONE, on_transfer)
        try:
            self.rd_call("SetSelection", GLib.Variant(
                "(a{sv})", ({"mime-types": GLib.Variant("as", [TEXT_MIME, "text/plain"])},)))
            ctx = GLib.MainContext.default()
            done = []
            GLib.timeout_add(int(seconds * 1000), lambda: done.append(1) or False)
            while not done:
                ctx.iteration(True)
        finally:
            self.bus.signal_unsubscribe(sub_id)
        return sum(1 for ok in served if ok)

    def stop(self):
        try:
            self.rd_call("Stop")
        except GLib.Error:
            pass


def main():
    connector = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        probe = Probe(connector)
    except (GLib.Error, RuntimeError) as e:
        say("err start: %s" % e)
        return 1
    say("node %d" % probe.node)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "quit":
                break
            elif cmd == "frame" and len(args) == 1:
                say("ok frame %s" % probe.frame(args[0]))
            elif cmd == "click" and len(args) == 2:
                probe.click(float(args[0]), float(args[1]))
                say("ok click %s %s" % (args[0], args[1]))
            elif cmd == "key" and len(args) == 1:
                say("ok key %s 0x%x" % (args[0], probe.key(args[0])))
            elif cmd == "clipread" and not args:
                say("ok clip %s" % probe.clip_read().hex())
            elif cmd == "clipset" and len(args) == 2:
                say("ok clipset served %d" % probe.clip_set(bytes.fromhex(args[0]), float(args[1])))
            else:
                say("err unknown command: %s" % line.strip())
        except (GLib.Error, RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as e:
            say("err %s: %s" % (cmd, e))
    probe.stop()
    say("ok quit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
