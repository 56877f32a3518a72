"""Safety: screening every message for risk, and the policy for what each risk gets.

- `screen`: input checks and cleaning (empty, too long, control characters, markup);
- `classifier`: the learned layer over the question's embedding (recall comes from here);
- `rules`: a few plain patterns kept as a backstop, and prompt-injection patterns;
- `assess`: classifier + rules + the conversation -> one `Assessment`;
- `policy`: the categories, their precedence, and which reply kind each gets;
- `replies`: the fixed texts and actions of each category, as typed reply parts;
- `guard`: source sentences that must never be quoted (planted instructions);
- `data`, `train`: the labelled message set and the reproducible training command.
"""
