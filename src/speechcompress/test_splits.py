"""The test splits a run is scored on, in the order it scores them: each one's name (the prefix of
its figures, as in `test_real/pesq`) and, for summaries, its title and what sets it apart."""

TEST = "test"  # the synthetic mixtures' held-back items
UNSEEN = "test_unseen"  # noises, languages and voices no other split draws
REAL = "test_real"  # recorded voices and noise that training never drew

TEST_SPLITS = {  # name → (title, what sets it apart)
    TEST: ("test split", ""),
    UNSEEN: ("unseen split", "noises and voices training never drew"),
    REAL: ("real split", "recorded voices and noise training never drew"),
}
