"""Progress bars for work that takes more than a moment: one look for all of them.

tqdm on stderr, shown only on a terminal (`disable=None`), gone when done (`leave=False`), and
laid out to stay useful on an 80-column terminal: a short description, a 20-character bar, the
count, elapsed and remaining time, then the postfix (loss, img/s) if there is room.
"""

from __future__ import annotations

from tqdm import tqdm

FORMAT = "{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


def bar(total: int, desc: str, unit: str = "img", enabled: bool = True, initial: int = 0) -> tqdm:
    """A progress bar of `total` units (disabled: a no-op object with the same methods)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                disable=None if enabled else True, bar_format=FORMAT)  # fmt: skip
