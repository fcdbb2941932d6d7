#!/usr/bin/env python3
"""A real VNC client (vncdotool's RFB implementation) driven by a command
line, for tests/e2e_vnc.rs. Run with the venv made by setup-venv.sh.

Usage: vnc_client.py HOST::PORT [--password PW] CMD [ARGS]...

Commands (run in order, each prints "done CMD" when the client has sent it):
  move X Y        pointer to X,Y (PointerEvent, no button)
  click B         press and release button B (1 = left)
  key K           press and release a key (vncdotool names: a, ctrl-c, ...)
  keydown K, keyup K, mousedown B, mouseup B   one half of it
  paste TEXT      ClientCutText with TEXT (Latin-1), what a viewer's paste sends
  capture FILE    full, non-incremental framebuffer update saved as PNG
  refresh         full framebuffer update, not saved
  pause S         sleep S seconds
  stream S        full updates back to back; prints "refresh N" after each;
                  prints "lost" and exits 0 as soon as the connection drops,
                  exits 3 if it is still up after S seconds

Prints "connected" once the RFB handshake is over. Exit 2 on any error, with
the reason on stderr. vncdotool's `vncdo` has no paste command, hence this.
"""
import os
import sys
import threading
import time

from vncdotool import api
from vncdotool.client import VNCDoToolFactory


lost = threading.Event()


class Factory(VNCDoToolFactory):
    # Ask for the cursor as a pseudo-encoding and do not draw it: the capture
    # is then the framebuffer alone, comparable with `import -window root`.
    nocursor = True

    def clientConnectionLost(self, connector, reason):
        lost.set()
        super().clientConnectionLost(connector, reason)


def say(*words):
    print(*words, flush=True)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    server = argv[1]
    args = argv[2:]
    password = None
    if args[:1] == ["--password"]:
        password = args[1]
        args = args[2:]
    client = api.connect(server, password=password, factory_class=Factory, timeout=30)
    client.refreshScreen()  # first call: waits for the handshake, raises on failure
    say("connected")
    i = 0
    while i < len(args):
        cmd = args[i]
        i += 1
        if cmd == "move":
            client.mouseMove(int(args[i]), int(args[i + 1]))
            i += 2
        elif cmd == "click":
            client.mousePress(int(args[i]))
            i += 1
        elif cmd == "mousedown":
            client.mouseDown(int(args[i]))
            i += 1
        elif cmd == "mouseup":
            client.mouseUp(int(args[i]))
            i += 1
        elif cmd == "keydown":
            client.keyDown(args[i])
            i += 1
        elif cmd == "keyup":
            client.keyUp(args[i])
            i += 1
        elif cmd == "key":
            client.keyPress(args[i])
            i += 1
        elif cmd == "paste":
            client.paste(args[i])
            i += 1
        elif cmd == "capture":
            client.captureScreen(args[i])
            i += 1
        elif cmd == "refresh":
            client.refreshScreen()
        elif cmd == "pause":
            time.sleep(float(args[i]))
            i += 1
        elif cmd == "stream":
            limit = float(args[i])
            i += 1

            def loop():
                n = 0
                while not lost.is_set():
                    try:
                        client.refreshScreen()
                    except BaseException:
                        return
                    n += 1
                    say("refresh", n)

            threading.Thread(target=loop, daemon=True).start()
            if lost.wait(limit):
                say("lost")
                return 0
            say("still connected")
            return 3
        else:
            print(f"unknown command {cmd!r}", file=sys.stderr)
            return 2
        say("done", cmd)
    client.disconnect()
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv)
    except BaseException as e:  # vncdotool raises Twisted failures of any type
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        code = 2
    sys.stdout.flush()
    # The Twisted reactor runs in a thread that may hang on a dead connection.
    os._exit(code)
