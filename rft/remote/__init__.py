"""Models rft reaches over HTTP (README "Remote models"; config: rft.config.RemoteServerConfig).

    client.py   RemoteClient: JSON requests with a key from the environment or a file, bounded
                concurrency, timeouts, retries honouring Retry-After, caps, accounting
    cache.py    answers on disk, keyed by everything that determines them
    openai.py   the OpenAI-compatible completions / chat request bodies and answers
    guide.py    RLGF's black-box guide: roll-ins and roll-outs over the API, in policy tokens

The rewards built on the client are rft.reward.remote (a reward-model server) and
rft.reward.judge (an LLM judge).
"""
