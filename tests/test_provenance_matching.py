"""How a code call is found to name a file, over any code, names and calls (properties),
and the rules that pick one call out of several."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from respflow import _events as ev
from respflow._core.provenance import Producers, names_path

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,12}\.[a-z]{1,4}", fullmatch=True)
FOLDERS = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), max_size=2)
JUNK = st.text(max_size=80)


def _path(folders: list[str], name: str) -> str:
    return "/".join(["/mnt/data", *folders, name])


@given(folders=FOLDERS, name=NAMES, before=JUNK, after=JUNK, form=st.integers(0, 4))
def test_code_that_names_a_path_in_any_usual_form_is_found(
    folders: list[str], name: str, before: str, after: str, form: int
) -> None:
    path = _path(folders, name)
    relative = "/".join([*folders, name])
    written = [
        f"plt.savefig('{path}')",
        f"[download](sandbox:{path})",
        f'df.to_csv("{relative}")',  # the sandbox's working folder is /mnt/data
        f"open('./{relative}', 'w')",
        f"PosixPath('{path}')",
    ][form]
    code = f"{before}\n{written}\n{after}"
    assert names_path(code, path)
    assert names_path(code, name)  # a citation knows only the name


@given(folders=FOLDERS, name=NAMES, junk=JUNK, longer=st.sampled_from(["old_", "x", ".bak"]))
def test_a_longer_name_or_another_folder_is_not_the_file(
    folders: list[str], name: str, junk: str, longer: str
) -> None:
    assume(name not in junk)
    path = _path(folders, name)
    bigger = longer + name if longer != ".bak" else name + longer
    code = f"{junk}\nsave('/mnt/data/{'/'.join([*folders, bigger])}')\n"
    assert not names_path(code, path)
    assert not names_path(code, name)
    elsewhere = f"{junk}\nsave('/mnt/data/{'/'.join(['elsewhere', *folders, name])}')\n"
    assert not names_path(elsewhere, path)
    assert names_path(elsewhere, name)  # the name alone cannot tell folders apart


def test_names_with_spaces_and_non_ascii_letters_are_found_whole() -> None:
    assert names_path("df.to_csv('/mnt/data/my report.csv')", "/mnt/data/my report.csv")
    assert names_path("open('résumé.txt', 'w')", "résumé.txt")
    assert not names_path("open('/mnt/data/report.csv.bak')", "/mnt/data/report.csv")
    assert not names_path("open('/mnt/data/report.csv/')", "/mnt/data/report.csv")


def test_an_endless_name_costs_a_bounded_search() -> None:
    code = "a" * 200_000 + "x.png" + " x.png" * 1000
    assert names_path(code, "x.png")
    assert not names_path(code, "/mnt/data/b/x.png")


class _Calls:
    """Feeds :class:`Producers` the events of code calls, as the assembler would."""

    def __init__(self) -> None:
        self.producers = Producers()
        self.n = 0

    def call(
        self, code: str, *, container: str = "cntr_a", logs: str = "", image: bool = False
    ) -> str:
        self.n += 1
        n = self.n
        item, cursor = f"ci_{n}", f"{n}-0"
        see = self.producers.see
        see(ev.CodeStarted("r", n, cursor, item, n, container_id=container))
        see(ev.CodeDone("r", n, cursor, item, n, code))
        if image:
            see(ev.CodeImage("r", n, cursor, item, n, "data:image/png;base64,"))
        if logs:
            see(ev.CodeLogs("r", n, cursor, item, n, logs))
        return item


@given(
    calls=st.lists(
        st.tuples(st.sampled_from(["cntr_a", "cntr_b"]), st.sets(st.sampled_from("abcd"))),
        min_size=1,
        max_size=8,
    ),
    wanted=st.sampled_from("abcde"),
    container=st.sampled_from(["cntr_a", "cntr_b"]),
)
def test_the_producer_is_the_latest_call_in_the_container_that_writes_the_file(
    calls: list[tuple[str, set[str]]], wanted: str, container: str
) -> None:
    fed = _Calls()
    made = [(fed.call(_writing(files), container=cid), cid, files) for cid, files in calls]
    origin = fed.producers.producer(container, path=f"/mnt/data/{wanted}.csv")
    writers = [item for item, cid, files in made if cid == container and wanted in files]
    inside = [item for item, cid, _ in made if cid == container]
    if writers:
        assert (origin.produced_by, origin.provenance) == (writers[-1], "code_names_path")
    elif inside:
        assert (origin.produced_by, origin.provenance) == (inside[-1], "last_call_in_container")
    else:
        assert (origin.produced_by, origin.provenance) == (None, "unknown")


def _writing(files: set[str]) -> str:
    return "\n".join(f"df.to_csv('/mnt/data/{name}.csv')" for name in sorted(files)) or "1 + 1"


def test_the_call_that_writes_a_file_wins_over_a_later_one_that_reads_it() -> None:
    fed = _Calls()
    writer = fed.call("df.to_csv('/mnt/data/data.csv')")
    fed.call("df = pd.read_csv('/mnt/data/data.csv')\nplt.savefig('/mnt/data/plot.png')")
    assert fed.producers.producer("cntr_a", path="/mnt/data/data.csv").produced_by == writer


def test_output_names_the_file_when_the_code_does_not() -> None:
    fed = _Calls()
    printer = fed.call("save(make_name())", logs="saved /mnt/data/report.pdf\n")
    fed.call("1 + 1")
    origin = fed.producers.producer("cntr_a", filename="report.pdf")
    assert (origin.produced_by, origin.provenance) == (printer, "output_names_path")


def test_an_image_cited_under_its_file_id_is_the_latest_image_shown() -> None:
    fed = _Calls()
    fed.call("plt.plot(x)\nplt.show()", image=True)
    shower = fed.call("plt.bar(x)\nplt.show()", image=True)
    fed.call("print(1)")
    origin = fed.producers.producer("cntr_a", filename="cfile_9.png", file_id="cfile_9")
    assert (origin.produced_by, origin.provenance) == (shower, "image_output")
    # a file the model named is not an image shown, even if no code names it
    named = fed.producers.producer("cntr_a", filename="chart.png", file_id="cfile_9")
    assert named.provenance == "last_call_in_container"


def test_calls_in_another_container_never_made_the_file() -> None:
    fed = _Calls()
    fed.call("df.to_csv('/mnt/data/a.csv')", container="cntr_a")
    origin = fed.producers.producer("cntr_b", path="/mnt/data/a.csv")
    assert (origin.produced_by, origin.provenance) == (None, "unknown")


def test_a_shell_call_is_found_by_its_commands_or_its_live_output() -> None:
    fed = _Calls()
    sorter = fed.call("cd /mnt/data\nsort rolls.txt > sorted.txt")
    reporter = fed.call("python3 make_report.py")
    for n, delta in enumerate(["writing ", "/mnt/data/report.md\n"]):
        fed.producers.see(ev.CodeOutput("r", 9, f"9-{n}", reporter, 2, delta))
    sorted_origin = fed.producers.producer("cntr_a", path="/mnt/data/sorted.txt")
    assert (sorted_origin.produced_by, sorted_origin.provenance) == (sorter, "code_names_path")
    report = fed.producers.producer("cntr_a", path="/mnt/data/report.md")
    assert (report.produced_by, report.provenance) == (reporter, "output_names_path")
