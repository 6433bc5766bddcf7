"""The seed's field rules, including properties over generated input."""

from __future__ import annotations

import re
import string

from hypothesis import given
from hypothesis import strategies as st

from iotkit.validation import Violations
from services.auth import rules

SPECIALS = "!@#$%^&*()_+-=[]{};':\"\\|,.<>/?"
ALLOWED = string.ascii_letters + string.digits + SPECIALS


def password_violation(password: str) -> str | None:
    violations = Violations()
    rules.check_password(violations, password)
    try:
        violations.raise_if_any()
    except Exception as exc:  # ValidationFailed carries the one violation
        return exc.violations[0].message  # type: ignore[attr-defined]
    return None


@given(st.text(alphabet=ALLOWED, min_size=4, max_size=140).map(lambda s: "aA1!" + s))
def test_passwords_of_every_class_pass_within_length(password: str) -> None:
    outcome = password_violation(password)
    if len(password) > rules.PASSWORD_MAX:
        assert outcome == rules.MSG_PASSWORD_LONG
    else:
        assert outcome is None


@given(
    st.text(alphabet=string.ascii_lowercase + string.digits + SPECIALS, min_size=8, max_size=128)
)
def test_passwords_without_an_uppercase_letter_fail(password: str) -> None:
    assert password_violation(password) == rules.MSG_PASSWORD_WEAK


@given(st.text(min_size=8, max_size=128).filter(lambda s: bool(set(s) - set(ALLOWED))))
def test_characters_outside_the_seed_alphabet_fail(password: str) -> None:
    assert password_violation("aA1!" + password[:120]) == rules.MSG_PASSWORD_WEAK


def test_the_seed_pattern_is_kept_verbatim() -> None:
    seed = (
        r"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)(?=.*[!@#$%^&*()_+\-=\[\]{};':\"\\|,.<>\/?])"
        r"[A-Za-z\d!@#$%^&*()_+\-=\[\]{};':\"\\|,.<>\/?]{8,}$"
    )
    reference = re.compile(seed, re.ASCII)
    for sample in [
        "Abcdef1!",
        "abcdef1!",
        "ABCDEF1!",
        "Abcdefg!",
        "Abcdef12",
        "Abc def1!",
        "Ab1!~xyz",
        "Ab1!" * 3,
    ]:
        assert bool(reference.match(sample)) == bool(rules.PASSWORD_PATTERN.match(sample)), sample


_LABEL = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=20)
_EMAILS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=6),
)


@given(_EMAILS)
def test_ordinary_emails_are_accepted_and_lower_cased(email: str) -> None:
    violations = Violations()
    normalised = rules.check_email(violations, f"  {email} ")
    assert not violations.has("email")
    assert normalised == email.lower()


def test_one_mailbox_is_one_address_whether_its_domain_is_in_punycode_or_unicode() -> None:
    forms = ["victim@exämple.com", "victim@xn--exmple-cua.com", " Victim@XN--EXMPLE-CUA.COM "]
    normalised = {rules.check_email(Violations(), form) for form in forms}
    assert normalised == {"victim@exämple.com"}


def test_email_messages() -> None:
    for value, message in [
        ("", rules.MSG_EMAIL_REQUIRED),
        ("   ", rules.MSG_EMAIL_REQUIRED),
        ("plain", rules.MSG_EMAIL_FORMAT),
        ("a@b", rules.MSG_EMAIL_FORMAT),
        ("x" * 250 + "@example.com", rules.MSG_EMAIL_LONG),
    ]:
        violations = Violations()
        rules.check_email(violations, value)
        try:
            violations.raise_if_any()
        except Exception as exc:
            assert exc.violations[0].message == message  # type: ignore[attr-defined]
        else:
            raise AssertionError(f"{value!r} was accepted")


@given(st.text(max_size=130))
def test_display_name_length_rule(name: str) -> None:
    violations = Violations()
    trimmed = rules.check_display_name(violations, name)
    assert violations.has("display_name") == (not 1 <= len(name.strip()) <= 100)
    assert trimmed == name.strip()


def test_a_final_newline_is_not_taken_for_the_end_of_a_password_or_a_domain() -> None:
    # Python's "$" also matches before a final newline; the rules end with "\Z".
    assert rules.PASSWORD_PATTERN.match("Abcdef1!")
    assert not rules.PASSWORD_PATTERN.match("Abcdef1!\n")
    violations = Violations()
    rules.check_domain(violations, "plant\n.example.com")
    assert violations.has("domain")
