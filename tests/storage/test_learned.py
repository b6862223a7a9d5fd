"""What workers learn (refusals), kept by each journal backend: replaced by key, listed by key
prefix, forgotten by kind, one kind apart from another."""

from storage.journal_folder import FolderJournal


def test_facts_are_kept_by_kind_and_key(journal):
    capabilities, prompts = journal.learned("capabilities"), journal.learned("refused_prompts")
    capabilities.put("b2", '{"n": 1}')
    capabilities.put("a1", '{"n": 2}')
    capabilities.put("b2", '{"n": 3}')  # learned again: replaced
    prompts.put("a1-x", '{"p": 1}')
    assert capabilities.texts() == ['{"n": 2}', '{"n": 3}']
    assert capabilities.texts("b") == ['{"n": 3}'] and prompts.texts("a1") == ['{"p": 1}']
    assert capabilities.forget() == 2 and capabilities.texts() == []
    assert prompts.texts() == ['{"p": 1}']


def test_a_folder_journal_keeps_them_beside_itself(tmp_path):
    journal = FolderJournal(tmp_path / "journal")
    journal.learned("capabilities").put("k", "{}")
    assert (tmp_path / "capabilities" / "k.json").read_text() == "{}"


def test_an_added_key_keeps_its_first_text_and_one_of_racing_adds_wins(journal):
    from concurrent.futures import ThreadPoolExecutor

    seen = journal.learned("deliveries")
    assert seen.add("d1", '{"n": 1}') and not seen.add("d1", '{"n": 2}')
    assert seen.texts() == ['{"n": 1}']
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda n: seen.add("d2", f'{{"n": {n}}}'), range(8)))
    assert won.count(True) == 1 and len(seen.texts("d2")) == 1


def test_a_removed_key_is_gone_and_removing_it_again_is_nothing(journal):
    seen = journal.learned("waiting_runs")
    seen.put("a-0", "{}")
    seen.put("a-1", "{}")
    seen.remove("a-0")
    seen.remove("a-0")
    assert seen.texts() == ["{}"] and seen.add("a-0", "{}")
