# A session helper that speaks the helper protocol and nothing else, for
# tests/service.rs: run under a chosen uid, it shows what the service sends
# (one line per message on stdout) and answers as told.
#   fake_helper.py SOCKET BEHAVIOUR
# control | view | refused    answer every prompt so
# silent                      never answer
# exit_on_ask                 disconnect when asked
# exit_in_session             disconnect once its session runs
# lock_in_session             report the screen saver active once its session runs
# forge                       answer a prompt it was never asked
# garbage                     send a line that is not the protocol
# open_pair                   accept control; on open, hand over one end of a
#                             socketpair and serve RFB on the other (a VNC
#                             server of this uid, like x11vnc started by
#                             the real helper)
# open_file | open_tcp:PORT   accept; on open, hand over /dev/null, or a TCP
#                             connection (not a server of ours: refused)
# open_nofd                   accept; say opened without the connection
# open_fail                   accept; say the server could not start
# wayland                     say hello from a Wayland session; answer control
# stranger                    answer control (a helper the service may refuse)
# After "go", each further line on stdin is a command, acknowledged on
# stdout with "told <command>":
#   answer BEHAVIOUR            from now on behave so (control, silent...)
#   {...}                       send this message (the version is added)
import json, os, socket, struct, sys, threading, time

path, behaviour = sys.argv[1], sys.argv[2]
sys.stdin.readline()  # the test is ready for this pid
s = socket.socket(socket.AF_UNIX)
s.connect(path)

lock = threading.Lock()
shown = threading.Lock()
def show(text):
    # One write per line: the command thread must not split the reader's.
    with shown:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

def send(o):
    d = {"v": 1}
    d.update(o)
    with lock:
        s.sendall((json.dumps(d) + "\n").encode())

def commands():
    global behaviour
    for cmd in sys.stdin:
        cmd = cmd.strip()
        if cmd.startswith("answer "):
            behaviour = cmd.split(" ", 1)[1]
        elif cmd.startswith("{"):
            try:
                send(json.loads(cmd))
            except OSError:
                return
        show("told " + cmd)

if behaviour == "wayland":
    send({"hello": {"version": "test", "display": "wayland"}})
    behaviour = "control"
else:
    send({"hello": {"version": "test"}})
    if behaviour == "stranger":
        behaviour = "control"
if behaviour == "garbage":
    s.sendall(b'{"v":1,"answer":"yes please"}\n')
def rfb_server(c):
    # RFB 3.8, security None, a 64x48 desktop; then reads until closed.
    try:
        c.sendall(b"RFB 003.008\n"); c.recv(12); c.sendall(b"\x01\x01"); c.recv(1)
        c.sendall(struct.pack(">I", 0)); c.recv(1)
        name = b"pair"
        c.sendall(struct.pack(">HH", 64, 48) + bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])
                  + struct.pack(">I", len(name)) + name)
        while c.recv(4096):
            pass
    except OSError:
        pass

def opened(session, fd):
    d = {"v": 1, "opened": {"session": session, "server": "fake"}}
    with lock:
        socket.send_fds(s, [(json.dumps(d) + "\n").encode()], [fd])

def on_open(session):
    if behaviour == "open_pair":
        mine, theirs = socket.socketpair()
        threading.Thread(target=rfb_server, args=(mine,), daemon=True).start()
        opened(session, theirs.fileno())
        theirs.close()
    elif behaviour == "open_file":
        f = os.open("/dev/null", os.O_RDONLY)
        opened(session, f)
        os.close(f)
    elif behaviour.startswith("open_tcp:"):
        t = socket.create_connection(("127.0.0.1", int(behaviour.split(":")[1])))
        opened(session, t.fileno())
    elif behaviour == "open_nofd":
        send({"opened": {"session": session, "server": "fake"}})
    elif behaviour == "open_fail":
        send({"open_failed": {"session": session, "why": "x11vnc exited at start (status 1): cannot open display"}})

threading.Thread(target=commands, daemon=True).start()
if behaviour == "forge":
    send({"answer": {"id": "00000000-0000-4000-8000-000000000001", "answer": "control"}})
for line in s.makefile("rb"):
    show(line.decode().strip())
    m = json.loads(line)
    if "ask" in m:
        if behaviour in ("control", "view", "refused"):
            send({"answer": {"id": m["ask"]["id"], "answer": behaviour}})
        elif behaviour.startswith("open_"):
            send({"answer": {"id": m["ask"]["id"], "answer": "control"}})
        elif behaviour in ("exit_in_session", "lock_in_session"):
            send({"answer": {"id": m["ask"]["id"], "answer": "control"}})
        elif behaviour == "exit_on_ask":
            os._exit(0)
    if "open" in m:
        on_open(m["open"]["session"])
    if "state" in m and m["state"].get("session"):
        if behaviour == "exit_in_session":
            time.sleep(0.5)
            os._exit(0)
        if behaviour == "lock_in_session":
            # Once the technician has the session, not while it starts.
            time.sleep(0.5)
            send({"screensaver": {"active": True}})
show("closed")
