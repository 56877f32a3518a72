"""PCL companion: cited answers about one article on relapsed plasma cell leukemia and allo CAR-T.

Importing the package sets the process defaults before any library that reads them is imported:
offline operation (no Hugging Face hub, Chroma telemetry or Gradio analytics), and one thread per
BLAS call.
"""

from bot import offline as _offline
from bot import threads as _threads

_offline.apply()
_threads.apply()
