"""How many examples a property with its own ``max_examples`` draws: its own (CI-sized) number
under the ``ci`` and ``dev`` profiles, the long profile's 10,000 under
``HYPOTHESIS_PROFILE=long`` (an explicit ``settings(max_examples=...)`` would otherwise
override the profile)."""

from __future__ import annotations

import os

# TORCHMDF_LONG_EXAMPLES splits a long run into lanes (two runs of 5,000 with different
# --hypothesis-seed values on two cores)
LONG_EXAMPLES = int(os.environ.get("TORCHMDF_LONG_EXAMPLES", "10000"))


def examples(ci: int) -> int:
    return LONG_EXAMPLES if os.environ.get("HYPOTHESIS_PROFILE") == "long" else ci
