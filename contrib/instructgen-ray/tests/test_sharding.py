"""Pure parts of the Ray executor: stable sharding and merged statistics."""

from __future__ import annotations

from instructgen_ray import NUM_SHARDS, _shard_of, _sum_stats


def test_shards_are_stable_and_spread() -> None:
    keys = [(f"docs/file{i}.pdf", j) for i in range(50) for j in range(4)]
    first = [_shard_of(r, j, NUM_SHARDS) for r, j in keys]
    assert first == [_shard_of(r, j, NUM_SHARDS) for r, j in keys]  # same every run
    assert set(first) == set(range(NUM_SHARDS))


def test_stats_are_summed() -> None:
    total = _sum_stats(
        [
            {
                "requests_sent": 3,
                "cost_usd": 0.5,
                "elapsed_s": 2.0,
                "errors": {"RateLimitError": 1},
            },
            {
                "requests_sent": 4,
                "cost_usd": 0.25,
                "elapsed_s": 3.0,
                "errors": {"RateLimitError": 2},
            },
        ]
    )
    assert total == {
        "requests_sent": 7,
        "cost_usd": 0.75,
        "elapsed_s": 3.0,
        "errors": {"RateLimitError": 3},
    }
