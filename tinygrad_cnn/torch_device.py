"""torch.device's reading of a device name, kept off the reading path: device.py names devices with it."""


class Device(str):
    """A canonical device name ("cpu", "cuda:0"), a str in every use, that also reads as torch.device:
    `x.device.type` is "cpu" or "cuda", `x.device.index` None or the GPU's number.

    NOTE: a str subclass rather than torch's own device class, so that every comparison, dict key and
    f-string written against names ("cpu", "cuda:0") keeps working; only torch's two attributes are added."""

    __slots__ = ()

    @property
    def type(self):
        """torch.device's type: "cpu" or "cuda"."""
        return self.partition(":")[0]

    @property
    def index(self):
        """torch.device's index: None on the CPU, N on cuda:N."""
        return int(self.partition(":")[2]) if ":" in self else None

    def __reduce__(self):
        return str, (str(self),)  # NOTE: pickled or copied it is a plain name


def legacy_size_hint(device):
    """What to add to the error when a number came where a device name goes: torch's legacy Tensor(2, 3)."""
    if not isinstance(device, int):
        return ""
    return (" (Tensor(2, 3) is torch's legacy size constructor: write tinygrad_cnn.zeros(2, 3); Tensor(data) "
            "keeps data's dtype, torch.tensor(data, dtype=torch.float) makes float32)")
