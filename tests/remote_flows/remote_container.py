"""A remote step that reports the container it ran in (user, PID, what it could write), and can
sleep so a test can stop it."""

from compute import remote

from aflow import FlowSpec, Parameter, step


class RemoteContainerFlow(FlowSpec):
    sleep = Parameter("sleep", default=0.0)

    @step
    def start(self):
        self.next(self.inside)

    @remote()
    @step
    def inside(self):
        import os
        import sys
        import tempfile
        import time

        def writable(folder):
            try:
                with tempfile.TemporaryFile(dir=folder):
                    return True
            except OSError:
                return False

        self.uid, self.gid, self.pid = os.getuid(), os.getgid(), os.getpid()
        self.python = sys.executable
        self.cwd_writable = writable(os.getcwd())
        self.home_writable = writable(os.path.expanduser("~"))
        self.root_writable = writable("/")
        self.tmp = tempfile.gettempdir()
        print(f"inside: uid {self.uid}, pid {self.pid}", flush=True)
        time.sleep(float(self.sleep))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemoteContainerFlow()
