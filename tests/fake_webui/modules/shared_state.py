"""Mirrors modules/shared_state.py:12-168 (State): the flags the samplers and the progress API read."""
import time


class State:
    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    sampling_step = 0
    sampling_steps = 0
    current_latent = None
    current_image = None
    textinfo = None
    time_start = None

    def skip(self):  # l.75
        self.skipped = True

    def interrupt(self):  # l.79
        self.interrupted = True

    def nextjob(self):  # l.87
        self.job_no += 1
        self.sampling_step = 0

    def dict(self):  # l.95
        return {"skipped": self.skipped, "interrupted": self.interrupted, "job": self.job,
                "job_count": self.job_count, "job_no": self.job_no, "sampling_step": self.sampling_step,
                "sampling_steps": self.sampling_steps}

    def begin(self, job="(unknown)"):  # l.110
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.job_no = 0
        self.current_latent = None
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.job = job

    def end(self):  # l.129
        self.job = ""
        self.job_count = 0

    def set_current_image(self):
        pass
