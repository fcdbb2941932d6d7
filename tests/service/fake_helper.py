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
import json, os, socket, sys, time

path, behaviour = sys.argv[1], sys.argv[2]
sys.stdin.readline()  # the test is ready for this pid
s = socket.socket(socket.AF_UNIX)
s.connect(path)

def send(o):
    d = {"v": 1}
    d.update(o)
    s.sendall((json.dumps(d) + "\n").encode())

send({"hello": {"version": "test"}})
if behaviour == "garbage":
    s.sendall(b'{"v":1,"answer":"yes please"}\n')
if behaviour == "forge":
    send({"answer": {"id": "00000000-0000-4000-8000-000000000001", "answer": "control"}})
for line in s.makefile("rb"):
    print(line.decode().strip(), flush=True)
    m = json.loads(line)
    if "ask" in m:
        if behaviour in ("control", "view", "refused"):
            send({"answer": {"id": m["ask"]["id"], "answer": behaviour}})
        elif behaviour in ("exit_in_session", "lock_in_session"):
            send({"answer": {"id": m["ask"]["id"], "answer": "control"}})
        elif behaviour == "exit_on_ask":
            os._exit(0)
    if "state" in m and m["state"].get("session"):
        if behaviour == "exit_in_session":
            time.sleep(0.5)
            os._exit(0)
        if behaviour == "lock_in_session":
            # Once the technician has the session, not while it starts.
            time.sleep(0.5)
            send({"screensaver": {"active": True}})
print("closed", flush=True)
