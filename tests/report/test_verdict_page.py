"""report.html for a person: the decision in plain words first, a banner whose colour follows
it, and no "winner" under an undecided verdict."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from effscale.report.html import banner, write_run_report
from effscale.report.sections import Verdict, decision_html

COUNTS = {"items": 9, "settled": 9, "running": 0, "waiting": 0}


def _run(finished: bool) -> SimpleNamespace:
    return SimpleNamespace(finished=finished, counts=COUNTS)


@pytest.mark.parametrize(("decided", "green"), [(True, True), (False, False), (None, False)])
def test_the_banner_is_green_only_when_decided(decided: bool | None, green: bool) -> None:
    """A finished run without an answer (decided None) got the green COMPLETE banner."""
    html = banner(_run(True), decided)
    assert ('class="banner done"' in html) == green and ("COMPLETE" in html) == green
    assert ('class="banner partial"' in html) == (not green)


def test_a_decided_search_says_so_and_what_it_means() -> None:
    html = decision_html(Verdict("…", True, pick="a1.20_b1.10_g1.150"), True, "search")
    assert 'class="decision decided"' in html
    assert "Decided: a1.20_b1.10_g1.150 is separated above the base" in html
    assert "You can scale your network with its coefficients" in html


def test_an_undecided_search_says_not_decided_and_not_to_use_it() -> None:
    html = decision_html(Verdict("…", False, pick="a1.40_b1.00_g1.000"), True, "search")
    assert 'class="decision undecided"' in html
    assert "Not decided: the confirmation did not separate a1.40_b1.00_g1.000" in html
    assert "do not scale a network with them" in html


def test_a_shrinking_search_is_decided_against_the_other_directions_not_the_base() -> None:
    html = decision_html(Verdict("…", True, pick="a0.60_b0.89_g0.850", shrinking=True), True,
                         "search")
    assert "separated above every other confirmed shrinking direction" in html
    assert "above the base" not in html
    html = decision_html(Verdict("…", False, pick="a0.60_b0.89_g0.850", shrinking=True),
                         True, "search")
    assert "from the other shrinking directions" in html and "The data do not choose" in html


def test_a_run_in_progress_is_not_decided_yet() -> None:
    html = decision_html(Verdict("…", None), False, "search")
    assert "Not decided yet: the run is still going." in html


@pytest.mark.slow
def test_an_undecided_page_has_no_winner_and_shows_the_family_caveat(smoke_search: Path
                                                                     ) -> None:
    text = write_run_report(smoke_search).read_text()
    head = text.split('id="verdict"')[0]
    assert 'id="decision">Not decided: the confirmation did not separate' in head
    assert head.index('id="decision"') < head.index('id="status"')  # the decision first
    assert 'class="banner partial"' in head and "COMPLETE" not in head
    verdict = text.split('id="verdict"')[1].split("</div>")[0]
    assert "<li>winner " not in verdict
    assert "screening&#x27;s pick (best so far, not decided)" in verdict \
        or "screening's pick (best so far, not decided)" in verdict
    family = text.split('id="family"')[1]
    assert "Caveat: UNDECIDED" in family.split("<table")[0]
    assert "scaled by the screening" in family


def test_the_confirmation_section_names_the_noise_its_comparisons_used() -> None:
    """The verdict's comparisons use each model's own seed noise (issue 29); the page still
    headed them with one pooled std and captioned them "plus pooled seed noise". The
    screening's comparisons, on the pooled std, keep their wording."""
    import numpy as np

    from effscale.experiment import stats
    from effscale.report.sections import seed_noise_body

    right = np.array([1.0] * 60 + [0.0] * 40)
    per_model = stats.compare_models("w", right, [0.61, 0.63, 0.62], "base",
                                     np.roll(right, 7), [0.58, 0.60, 0.59])
    assert per_model.seed_std_b is not None
    html = seed_noise_body({}, [per_model])
    assert "Seed noise per model" in html and "own seed noise" in html
    assert "pooled" not in html.replace("not one std pooled", "")
    pooled = stats.Comparison("w", "base", 0.02, -0.01, 0.05, 0.01, False)
    assert "plus pooled seed noise" in seed_noise_body({}, [pooled])
