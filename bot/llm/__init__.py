"""Optional generated answers (issue 12): chat models, the prompt chain and streaming events.

Nothing here is imported unless an LLM is configured (`PCL_LLM_BASE_URL` or `PCL_LLM_GGUF`):
`bot.pipeline.Companion` imports `bot.answer.generate` (and through it `bot.llm.models`) only then.
`bot.llm.events` is light and always importable: `Companion.ask_stream` yields its events.
"""
