"""The hybrid search as a LangChain retriever, for chains and tools outside this package
(`Companion().retriever()`); imported only when asked for."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from bot.retrieval.search import HybridSearch
from bot.store.embed import embed_query


class HybridRetriever(BaseRetriever):
    """The same search as a LangChain retriever, for chains and tools outside this package."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    search: HybridSearch
    embeddings: object
    k: int = 4
    candidates: int = 12
    mode: str = "hybrid"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        qvec = embed_query(self.embeddings, query) if self.mode != "bm25" else None
        hits = self.search.search(query, qvec, self.k, self.candidates, self.mode)
        return [
            Document(
                page_content=h.chunk.page_content,
                metadata=h.chunk.metadata | {"score": h.score},
                id=h.chunk.id,
            )
            for h in hits
        ]
