"""`LocalChatModel`: a transformers causal LM (e.g. read from a GGUF file) as a LangChain chat model.

Messages go through the tokenizer's chat template; `stream` yields text as `generate` produces
it (a `TextIteratorStreamer` fed from a worker thread). Closing the stream stops generation at
the next token, so a reader that has enough (or a guard that gave up) frees the CPU at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class LocalChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any  # a transformers PreTrainedModel
    tokenizer: Any
    model_name: str = "local"
    max_new_tokens: int = 160
    temperature: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "pcl-local-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_new_tokens": self.max_new_tokens}

    def _inputs(self, messages: list[BaseMessage]) -> dict:
        chat = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        enc = self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return dict(enc)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(c.text for c in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        halt = threading.Event()

        class Halt(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw) -> bool:
                return halt.is_set()

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sample = self.temperature > 0
        params = dict(
            **self._inputs(messages),
            streamer=streamer,
            max_new_tokens=int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            do_sample=sample,
            stopping_criteria=StoppingCriteriaList([Halt()]),
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        if sample:
            params["temperature"] = self.temperature
        else:  # greedy: unset the sampling defaults a model's generation config may carry
            params |= {"temperature": None, "top_p": None, "top_k": None}
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**params)
            except BaseException as exc:  # surfaced to the reader below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=work, name="pcl-llm-generate", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if failure:
                    break
                if not text:
                    continue
                if stop and any(s in text for s in stop):
                    text = text[: min(text.index(s) for s in stop if s in text)]
                    if text:
                        yield ChatGenerationChunk(message=AIMessageChunk(content=text))
                    break
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            halt.set()  # the reader stopped (done, enough, or gone): stop generating
            worker.join()
        if failure:
            raise failure[0]
