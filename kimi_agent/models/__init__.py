"""Model profiles and routing.

`ModelProfile` says what a model accepts (window, output cap, parallel calls, structured
output); `register_model` adds one. `ModelRouter` picks the model of each step and falls over
to the fallback model when the primary keeps failing or the prompt outgrows its window.
"""

from __future__ import annotations

from kimi_agent.models._profiles import (
    DEFAULT_PROFILES,
    KIMI_K2_5,
    KIMI_K2_6,
    ModelPrice,
    ModelProfile,
    ModelProfiles,
    get_profile,
    register_model,
)
from kimi_agent.models._router import ModelRouter

__all__ = ["DEFAULT_PROFILES", "KIMI_K2_5", "KIMI_K2_6", "ModelPrice", "ModelProfile",
           "ModelProfiles", "ModelRouter", "get_profile", "register_model"]
