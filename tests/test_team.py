"""The CPU kernel's thread count follows measured speed (w2v.strategies.team)."""

from w2v.strategies.team import SPACING, SPACING_FEWER, TeamSize, team_sizes

PAIRS = 100_000  # pairs per chunk


def drive(team, rate, chunks):
    """Run ``chunks`` chunks whose speed is ``rate(size, i)`` pairs per second; the team of each chunk."""
    used = []
    for i in range(chunks):
        size = team.next()
        used.append(size)
        team.record(size, PAIRS, PAIRS / rate(size, i))
    return used


def test_a_machine_where_more_threads_are_faster_keeps_them_and_checks_rarely():
    team = TeamSize(2)
    used = drive(team, lambda size, i: {2: 1.45e6, 1: 1.0e6}[size], 2000)
    assert team.current == 2 and team.changes == 0
    # one chunk at the start, then one every 64, 128, 256, 512 chunks
    assert 1 <= used.count(1) <= 2 + 2000 // SPACING[0] // 4
    assert used[:2] == [2, 2] and used[2] == 1  # the first comparison comes early: a run may start slow


def test_threads_that_measure_slower_than_fewer_give_way_at_once():
    team = TeamSize(2)
    used = drive(team, lambda size, i: {2: 0.6e6, 1: 1.0e6}[size], 1000)
    assert used[3:10] == [1] * 7 and team.current == 1 and team.changes == 1
    # the larger team is looked at again, at most every SPACING_FEWER[1] chunks
    assert 1000 // SPACING_FEWER[1] - 1 <= used.count(2) - 2 <= 1000 // SPACING_FEWER[0]


def test_a_slow_stretch_is_met_within_chunks_and_left_when_it_ends():
    team = TeamSize(2)

    def rate(size, i):
        slow = 300 <= i < 600
        return {2: 0.4e6 if slow else 1.45e6, 1: 0.95e6 if slow else 1.0e6}[size]

    used = drive(team, rate, 1000)
    assert used[295:300] == [2] * 5
    assert used[303:600].count(2) <= 300 // SPACING_FEWER[0]  # on one thread within 3 chunks of its start
    back = next(i for i in range(600, 1000) if used[i:i + 20] == [2] * 20)
    assert back <= 600 + SPACING_FEWER[1] + 1 and team.current == 2 and team.changes == 2


def test_one_slow_chunk_does_not_change_the_team():
    team = TeamSize(2)
    used = drive(team, lambda size, i: 0.3e6 if size == 2 and i == 500 else {2: 1.45e6, 1: 1.0e6}[size], 1000)
    assert team.changes == 0 and team.current == 2
    assert used[503] == 1  # it did bring a comparison forward


def test_more_threads_step_down_one_size_at_a_time_and_back_up():
    team = TeamSize(8)
    speeds = {8: 1.0e6, 4: 2.0e6, 2: 1.5e6, 1: 0.8e6}
    drive(team, lambda size, i: speeds[size], 600)
    assert team.current == 4  # 2 was tried below 4 and lost; 8 above it and lost
    assert set(team.chunks) == {8, 4, 2}


def test_a_fixed_team_never_changes():
    for team in (TeamSize(4, adapt=False), TeamSize(1)):
        used = drive(team, lambda size, i: 1e6 / size, 300)  # fewer would be faster
        assert set(used) == {team.sizes[0]} and team.changes == 0
    assert team_sizes(6) == [6, 3, 2, 1] and TeamSize(4).summary() == {}
