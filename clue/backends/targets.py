"""What every engine's `score_targets` shares (clue/backends/base.py, `ScoresTargets`): the prompt fitted with room
for the longest target, the targets' own token ids, and the loop that reports each request as it is scored."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clue.backends.chat import ChatTokenizer
from clue.types import Prompt, ScoredTargets, TargetRequest

__all__ = ["fit_targets", "score_each"]


def fit_targets(chat: ChatTokenizer, request: TargetRequest) -> tuple[list[int], list[list[int]]] | str:
    """(the prompt's token ids, each target's token ids): the prompt rendered and fitted as for generation, with
    room for the longest target; or why the request cannot be scored."""
    targets = [chat.encode(t) for t in request.targets]
    if not targets or not all(targets):
        return "a target has no tokens"
    prompt = request.prompt
    fitted = chat.fit(
        Prompt(prompt.task, prompt.sample_id, prompt.messages, max(map(len, targets)), prompt.truncatable)
    )
    return fitted.error if fitted.error else (fitted.ids, targets)


def score_each(
    requests: Sequence[TargetRequest],
    score: Callable[[TargetRequest], ScoredTargets],
    *,
    desc: str,
    on_result: Callable[[int, ScoredTargets], None] | None,
) -> list[ScoredTargets]:
    """`score` on each request in turn, a progress bar, `on_result` as soon as each is scored."""
    from tqdm.auto import tqdm

    results = []
    with tqdm(total=len(requests), desc=desc, unit="sample", leave=False) as bar:
        for i, request in enumerate(requests):
            results.append(score(request))
            if on_result:
                on_result(i, results[-1])
            bar.update(1)
    return results
