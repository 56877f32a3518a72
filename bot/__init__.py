"""PCL companion: cited answers about one article on relapsed plasma cell leukemia and allo CAR-T.

Importing the package pins the process to offline operation before any library that could
phone home (Hugging Face hub, Chroma telemetry, Gradio analytics) is imported.
"""

from bot import offline as _offline

_offline.apply()
