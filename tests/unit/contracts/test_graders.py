"""Graders without the service: definitions checked before they run, templates, the formula
of a multi grader, each metric, and model graders' requests and answers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.graders import formula, model_graders, schema, similarity, templates
from contracts.graders.errors import GraderError
from contracts.graders.run import Context, grade

CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}


def _grade(grader: dict[str, Any], sample: str, item: Any = None, ctx: Context | None = None):  # type: ignore[no-untyped-def]
    parsed = schema.parse(grader)
    schema.check(parsed)
    return grade(parsed, sample, item, ctx or Context())


def _refused(grader: dict[str, Any]) -> GraderError:
    with pytest.raises(GraderError) as caught:
        schema.check(schema.parse(grader))
    return caught.value


@pytest.mark.parametrize(
    ("operation", "sample", "reward"),
    [
        ("eq", "Paris", 1.0),
        ("eq", "paris", 0.0),
        ("ne", "paris", 1.0),
        ("like", "It is Paris.", 1.0),
        ("like", "It is PARIS.", 0.0),
        ("ilike", "It is PARIS.", 1.0),
    ],
)
def test_string_check(operation: str, sample: str, reward: float) -> None:
    result = _grade({**CHECK, "operation": operation}, sample, {"label": "Paris"})
    assert result.reward == reward and not result.errors.any()


def test_templates_reach_nested_item_fields_and_the_samples_json() -> None:
    grader = {**CHECK, "input": "{{sample.output_json.city}}", "reference": "{{item.a.b[1]}}"}
    result = _grade(grader, '{"city": "Oslo"}', {"a": {"b": ["x", "Oslo"]}})
    assert result.reward == 1.0
    # A non-string value is rendered as JSON.
    rendered = templates.render(
        "{{item.n}} {{item.l}}", templates.Sample.from_text("x"), {"n": 3, "l": [1]}
    )
    assert rendered == "3 [1]"


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{{sample.nope}}", "Unknown template variable"),
        ("{{items.label}}", "Unknown template namespace `items`"),
        ("{{item}}", "Invalid template variable"),
        ("{{item.label | upper}}", "Invalid template variable"),
        ("{{ item.label", "without its closing"),
        ("{{sample.output_text.x}}", "is a string"),
    ],
)
def test_an_unknown_template_variable_is_refused_naming_the_field(template: str, said: str) -> None:
    error = _refused({**CHECK, "reference": template})
    assert error.param == "grader.reference" and said in error.message


def test_a_missing_item_field_or_a_sample_that_is_not_json_is_reported_not_raised() -> None:
    missing = _grade(CHECK, "Paris", {"other": 1})
    assert missing.reward == 0.0 and missing.errors.invalid_variable_error
    not_json = _grade({**CHECK, "input": "{{sample.output_json.city}}"}, "plain", {"label": "x"})
    assert not_json.reward == 0.0 and not_json.errors.sample_parse_error


def test_unknown_fields_and_types_are_refused() -> None:
    with pytest.raises(ValidationError):
        schema.parse({**CHECK, "operation": "contains"})
    with pytest.raises(ValidationError):
        schema.parse({**CHECK, "extra": 1})
    with pytest.raises(ValidationError):
        schema.parse({**CHECK, "type": "endpoint"})


def test_formula_arithmetic_and_functions() -> None:
    values = {"a": 0.5, "b": 0.25}
    assert formula.evaluate("(a + b) / 2", values) == 0.375
    assert formula.evaluate("a ^ 2 + b ** 2", values) == 0.3125
    assert formula.evaluate("2 ^ 3 ^ 2", values) == 512.0  # right-associative, as `**`
    assert (
        formula.evaluate("max(a, b) - min(a, b) + abs(-1) + sqrt(b) + floor(1.5)", values) == 2.75
    )
    assert formula.evaluate("-a + log(exp(b)) + ceil(0.2)", values) == pytest.approx(0.75)


@pytest.mark.parametrize(
    "text",
    [
        '__import__("os").system("id")',
        "a.__class__",
        "open('/etc/passwd')",
        "[a, b]",
        "a if b else 1",
        "lambda: 1",
        "min",
        "c + 1",
        "'a'",
        "True + a",
        "max(a, key=b)",
        "0.5 * a + 0.5 * b)",
        "a < b",
    ],
)
def test_formula_refuses_anything_but_arithmetic(text: str) -> None:
    with pytest.raises(formula.FormulaError):
        formula.parse(text, {"a", "b"})


def test_formula_without_a_value_is_an_error_not_a_crash() -> None:
    for text in ("a / (b - b)", "log(b - b)", "10 ^ 400", "2 ^ 100000"):
        with pytest.raises(formula.FormulaError):
            formula.evaluate(text, {"a": 1.0, "b": 1.0})


def test_multi_grader_combines_named_graders() -> None:
    grader = {
        "type": "multi",
        "name": "both",
        "graders": {
            "city": CHECK,
            "close": {
                "type": "text_similarity",
                "name": "fuzzy",
                "input": "{{sample.output_text}}",
                "reference": "{{item.label}}",
                "evaluation_metric": "fuzzy_match",
            },
        },
        "calculate_output": "0.5 * city + 0.5 * close",
    }
    result = _grade(grader, "Paris", {"label": "Paris"})
    assert result.reward == 1.0 and result.sub_rewards == {"city": 1.0, "close": 1.0}
    half = _grade(grader, "Pari", {"label": "Paris"})
    assert half.sub_rewards["city"] == 0.0 and 0.4 < half.reward < 0.5
    # OpenAI's spec's form: one grader, named in the formula by its name.
    single = _grade(
        {**grader, "graders": CHECK, "calculate_output": "exact * 2"}, "Paris", {"label": "Paris"}
    )
    assert single.reward == 2.0


def test_multi_grader_is_checked_deep() -> None:
    base = {"type": "multi", "name": "m", "graders": {"x": CHECK}, "calculate_output": "x"}
    assert _refused({**base, "calculate_output": "x +"}).param == "grader.calculate_output"
    assert "`y`" in _refused({**base, "calculate_output": "x + y"}).message
    bad = {**CHECK, "reference": "{{nope.x}}"}
    assert _refused({**base, "graders": {"x": bad}}).param == "grader.graders.x.reference"


def test_python_source_is_checked_without_running_it() -> None:
    python = {"type": "python", "name": "p"}
    assert "define `grade" in _refused({**python, "source": "def other(s, i): return 1"}).message
    assert "does not parse" in _refused({**python, "source": "def grade(:"}).message
    big = "def grade(s, i):\n    return 1.0\n" + "#" * schema.MAX_PYTHON_SOURCE_BYTES
    assert "at most 256 KB" in _refused({**python, "source": big}).message
    schema.check(schema.parse({**python, "source": "grade = lambda s, i: 1.0"}))


@pytest.mark.parametrize(
    ("metric", "same", "different"),
    [
        ("fuzzy_match", 1.0, (0.0, 0.7)),
        ("bleu", 1.0, (0.0, 0.5)),
        ("gleu", 1.0, (0.0, 0.5)),
        ("meteor", 0.99, (0.0, 0.6)),
        ("rouge_1", 1.0, (0.2, 0.3)),
        ("rouge_2", 1.0, (0.0, 0.4)),
        ("rouge_3", 1.0, (0.0, 0.01)),
        ("rouge_4", 1.0, (0.0, 0.01)),
        ("rouge_5", 1.0, (0.0, 0.01)),
        ("rouge_l", 1.0, (0.2, 0.3)),
    ],
)
def test_similarity_metrics(metric: str, same: float, different: tuple[float, float]) -> None:
    reference = "the quick brown fox jumps over the lazy dog"
    assert similarity.score(metric, reference, reference) >= same
    low, high = different
    assert low <= similarity.score(metric, "a quick red fox sleeps under a tree", reference) <= high


def test_meteor_matches_stems() -> None:
    assert similarity.score("meteor", "the dogs jumped", "the dog jumps") > similarity.score(
        "meteor", "the cats slept", "the dog jumps"
    )


def test_cosine_needs_an_embedding_model() -> None:
    grader = {**CHECK, "type": "text_similarity", "evaluation_metric": "cosine"}
    del grader["operation"]
    no_model = _grade(grader, "a", {"label": "b"})
    assert no_model.reward == 0.0 and no_model.errors.other_error

    def embed(texts: Any) -> list[list[float]]:
        return [[1.0, 0.0] if t == "a" else [1.0, 1.0] for t in texts]

    result = _grade(grader, "a", {"label": "b"}, Context(embed=embed))
    assert result.reward == pytest.approx(0.7071, abs=1e-3)


SCORE = {
    "type": "score_model",
    "name": "judge",
    "model": "judge-model",
    "input": [
        {"role": "developer", "content": "Score 0-1."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "A: {{sample.output_text}} R: {{item.ref}}"}
            ],
        },
    ],
    "range": [0, 1],
    "sampling_params": {"temperature": 0, "seed": 7, "max_completions_tokens": 16},
}


def _answer(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    return {
        "model": "judge-model-v1",
        "choices": [{"message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


def test_score_model_request_and_answer() -> None:
    sent: list[dict[str, Any]] = []

    def complete(model: str, body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return _answer('{"result": 1.7}')

    result = _grade(SCORE, "Paris", {"ref": "Paris"}, Context(complete=complete))
    body = sent[0]
    assert body["messages"] == [
        {"role": "system", "content": "Score 0-1."},
        {"role": "user", "content": "A: Paris R: Paris"},
    ]
    assert body["temperature"] == 0 and body["seed"] == 7 and body["max_completion_tokens"] == 16
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["result"]
    assert result.reward == 1.0  # 1.7, held to the range
    assert result.usage_per_model == {
        "judge-model-v1": {
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "total_tokens": 13,
            "cached_tokens": 0,
        }
    }
    assert result.to_openai()["metadata"]["token_usage"] == 13


@pytest.mark.parametrize(
    ("answer", "reward", "flag"),
    [
        (_answer("0.25"), 0.25, None),
        (_answer("Score: 0.5 out of 1"), 0.5, None),
        (_answer("no idea"), 0.0, "model_grader_parse_error"),
        (_answer(None, refusal="I can't"), 0.0, "model_grader_refusal_error"),
        ({"choices": []}, 0.0, "model_grader_parse_error"),
    ],
)
def test_score_model_answers_read_leniently(
    answer: dict[str, Any], reward: float, flag: str | None
) -> None:
    result = _grade(SCORE, "x", {"ref": "y"}, Context(complete=lambda m, b: answer))
    assert result.reward == reward
    assert (getattr(result.errors, flag) if flag else not result.errors.any()) is True


def test_label_model() -> None:
    grader = {
        "type": "label_model",
        "name": "sentiment",
        "model": "judge-model",
        "input": [{"role": "user", "content": "{{sample.output_text}}"}],
        "labels": ["positive", "neutral", "negative"],
        "passing_labels": ["positive"],
    }
    sent: list[dict[str, Any]] = []

    def complete(model: str, body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return _answer('{"label": "positive"}')

    result = _grade(grader, "great", None, Context(complete=complete))
    assert result.reward == 1.0 and result.scores == {"label": "positive"}
    enum = sent[0]["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"]
    assert enum == ["positive", "neutral", "negative"]
    assert (
        _grade(grader, "meh", None, Context(complete=lambda m, b: _answer("neutral"))).reward == 0.0
    )
    assert _refused({**grader, "passing_labels": ["great"]}).param == "grader.passing_labels"


def test_a_grading_model_that_fails_is_a_server_error_flag() -> None:
    def down(model: str, body: dict[str, Any]) -> dict[str, Any]:
        raise model_graders.ModelCallError("connection refused")

    result = _grade(SCORE, "x", {"ref": "y"}, Context(complete=down))
    assert result.reward == 0.0 and result.errors.model_grader_server_error
    assert result.errors.model_grader_server_error_details == "connection refused"
