"""A flow that writes and reads through S3(run=self), and hands over the data's URL."""

from aflow import S3, FlowSpec, step


class S3ClientFlow(FlowSpec):
    @step
    def start(self):
        with S3(run=self) as s3:
            self.url = s3.put("greeting.txt", "hello from " + self.__class__.__name__)
            s3.put_many([("parts/a", b"A"), ("parts/b", b"B")])
        self.next(self.end)

    @step
    def end(self):
        with S3(run=self) as s3:
            self.text = s3.get("greeting.txt").text
            self.parts = sorted((o.key, o.blob) for o in s3.get_recursive(["parts"]))
            self.root = s3.s3root


if __name__ == "__main__":
    S3ClientFlow()
