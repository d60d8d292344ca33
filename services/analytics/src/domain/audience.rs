//! Audience rules: a small typed language over member facts, such as
//!
//! ```text
//! stage >= purchased and (tag = "koc" or spend >= 100000) and not city = "Shanghai"
//! ```
//!
//! parsed (with winnow) into a [`Rule`], each comparison checked against its field's type. A rule
//! that does not parse or check is refused with the line and column of the fault.

use chrono::NaiveDate;
use quanyu_proto::common::v1::Channel;
use quanyu_runtime::error::{FieldViolation, quote};
use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, delimited, opt, preceded, repeat};
use winnow::error::{ContextError, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::stream::LocatingSlice;
use winnow::token::{one_of, take_till, take_while};

use super::aipl::Stage;

/// The longest rule accepted, in characters.
pub const MAX_RULE_CHARS: usize = 4_000;
/// How deep parentheses and `not`s may nest: deep enough for any rule a person writes.
const MAX_NESTING: usize = 32;

/// A checked rule: which members it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
    Not(Box<Rule>),
    Test(Test),
}

/// One comparison of a member fact with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub fact: Fact,
    pub op: Op,
    pub value: Value,
}

/// The member facts a rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// The tier loyalty-points last announced, in any program.
    Tier,
    /// A tag the member has, by name.
    Tag,
    /// A channel the member bought on.
    Channel,
    /// The points balance, over every program.
    Points,
    /// Days since the last purchase.
    RecencyDays,
    /// Sales in the 365 days to today.
    Frequency,
    /// Net spend in the 365 days to today, in minor units.
    Spend,
    City,
    /// Full years since the birthday.
    Age,
    /// The day of enrolment.
    Enrolled,
    /// The store of the member's guide binding (else of enrolment).
    Store,
    Guide,
    /// The AIPL stage today, by the default windows.
    Stage,
}

/// What a fact's values are, and so which comparisons it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Date,
    Channel,
    Stage,
}

/// Each fact by its name in a rule, with the kind of its values.
const FACTS: [(&str, Fact, Kind); 13] = [
    ("tier", Fact::Tier, Kind::Text),
    ("tag", Fact::Tag, Kind::Text),
    ("channel", Fact::Channel, Kind::Channel),
    ("points", Fact::Points, Kind::Number),
    ("recency_days", Fact::RecencyDays, Kind::Number),
    ("frequency", Fact::Frequency, Kind::Number),
    ("spend", Fact::Spend, Kind::Number),
    ("city", Fact::City, Kind::Text),
    ("age", Fact::Age, Kind::Number),
    ("enrolled", Fact::Enrolled, Kind::Date),
    ("store", Fact::Store, Kind::Text),
    ("guide", Fact::Guide, Kind::Text),
    ("stage", Fact::Stage, Kind::Stage),
];

/// Channels by their name in a rule.
const CHANNELS: [(&str, Channel); 6] = [
    ("tmall", Channel::Tmall),
    ("jd", Channel::Jd),
    ("douyin", Channel::Douyin),
    ("wechat_mall", Channel::WechatMall),
    ("store", Channel::Store),
    ("other", Channel::Other),
];

/// Stages by their name in a rule.
const STAGES: [(&str, Stage); 5] = [
    ("none", Stage::None),
    ("aware", Stage::Aware),
    ("interested", Stage::Interested),
    ("purchased", Stage::Purchased),
    ("loyal", Stage::Loyal),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// The comparison that holds with its sides swapped: `a < b` is `b > a`.
    pub fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
            same @ (Self::Eq | Self::Ne) => same,
        }
    }

    /// As SQL writes it.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Number(i64),
    Date(NaiveDate),
    Channel(Channel),
    Stage(Stage),
}

/// The oldest age a rule may compare with.
const MAX_AGE: i64 = 150;

/// The last birthday of someone `years` old `today`: they are at least that old when born by it.
pub fn born_by(today: NaiveDate, years: i64) -> NaiveDate {
    let months = u32::try_from(years.clamp(0, MAX_AGE + 1) * 12).unwrap_or(0);
    today
        .checked_sub_months(chrono::Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

/// Parses and checks a rule; a fault is a violation of `field` that says where it is.
pub fn parse(field: &str, text: &str) -> Result<Rule, FieldViolation> {
    let fault = |at: usize, why: String| FieldViolation::new(field, format!("{}: {why}", position(text, at)));
    if text.trim().is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if text.chars().count() > MAX_RULE_CHARS {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {MAX_RULE_CHARS} characters"),
        ));
    }
    if let Some(at) = too_deep(text) {
        return Err(fault(
            at,
            format!("nests more than {MAX_NESTING} deep; write the rule flatter"),
        ));
    }
    let raw = rule.parse(LocatingSlice::new(text)).map_err(|error| {
        let at = error.offset();
        // The innermost expectation is the most precise: the outer ones only repeat it wider.
        let expected = error.inner().context().find_map(|context| match context {
            StrContext::Expected(value) => Some(value.to_string()),
            _ => None,
        });
        let found = text[at..].split_whitespace().next().unwrap_or("");
        let found = if found.is_empty() {
            "the end of the rule".to_owned()
        } else {
            quote(found).to_string()
        };
        match expected {
            Some(expected) => fault(at, format!("expected {expected}, found {found}")),
            None => fault(at, format!("unexpected {found}; join comparisons with and, or, not")),
        }
    })?;
    check(&raw).map_err(|(at, why)| fault(at, why))
}

/// "line L, column C" of a byte offset, both counted from 1 (columns in characters).
fn position(text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}")
}

/// Where the rule first nests deeper than allowed (parentheses and `not`s), outside quotes.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut nots = 0usize;
    let mut quoted: Option<char> = None;
    for (at, character) in text.char_indices() {
        match (quoted, character) {
            (Some(quote), c) if c == quote => quoted = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quoted = Some(character),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, 'n') if text[at..].starts_with("not") => nots += 1,
            _ => {}
        }
        if depth > MAX_NESTING || nots > MAX_NESTING * 2 {
            return Some(at);
        }
    }
    None
}

/// A rule as parsed, before its comparisons are checked: offsets point into the text.
#[derive(Debug)]
enum Raw<'a> {
    And(Box<Raw<'a>>, Box<Raw<'a>>),
    Or(Box<Raw<'a>>, Box<Raw<'a>>),
    Not(Box<Raw<'a>>),
    Test {
        fact: (&'a str, usize),
        op: Op,
        value: (RawValue<'a>, usize),
    },
}

#[derive(Debug)]
enum RawValue<'a> {
    Text(&'a str),
    Number(&'a str),
    Date(&'a str),
    Word(&'a str),
}

type Input<'a> = LocatingSlice<&'a str>;

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

fn rule<'a>(input: &mut Input<'a>) -> ModalResult<Raw<'a>> {
    let rule = any_of(input)?;
    multispace0.parse_next(input)?;
    Ok(rule)
}

fn word<'a>(input: &mut Input<'a>) -> ModalResult<&'a str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
    )
        .take()
        .parse_next(input)
}

fn keyword<'a>(name: &'static str) -> impl Parser<Input<'a>, (), winnow::error::ErrMode<ContextError>> {
    preceded(multispace0, word.verify(move |found: &str| found == name)).void()
}

/// `a or b or …`
fn any_of<'a>(input: &mut Input<'a>) -> ModalResult<Raw<'a>> {
    let first = all_of(input)?;
    let rest: Vec<Raw<'a>> = repeat(0.., preceded(keyword("or"), cut_err(all_of))).parse_next(input)?;
    Ok(rest
        .into_iter()
        .fold(first, |left, right| Raw::Or(Box::new(left), Box::new(right))))
}

/// `a and b and …`
fn all_of<'a>(input: &mut Input<'a>) -> ModalResult<Raw<'a>> {
    let first = unary(input)?;
    let rest: Vec<Raw<'a>> = repeat(0.., preceded(keyword("and"), cut_err(unary))).parse_next(input)?;
    Ok(rest
        .into_iter()
        .fold(first, |left, right| Raw::And(Box::new(left), Box::new(right))))
}

/// `not a`, `(a)` or a comparison.
fn unary<'a>(input: &mut Input<'a>) -> ModalResult<Raw<'a>> {
    preceded(
        multispace0,
        alt((
            preceded(keyword("not"), cut_err(unary)).map(|rule| Raw::Not(Box::new(rule))),
            delimited(
                '(',
                cut_err(any_of),
                cut_err(preceded(multispace0, ')')).context(expected("`)`")),
            ),
            comparison,
        )),
    )
    .context(expected("a comparison such as `spend >= 100000`"))
    .parse_next(input)
}

fn comparison<'a>(input: &mut Input<'a>) -> ModalResult<Raw<'a>> {
    let (fact, fact_span) = word.with_span().parse_next(input)?;
    let op = cut_err(preceded(multispace0, operator))
        .context(expected("a comparison operator (=, !=, <, <=, >, >=)"))
        .parse_next(input)?;
    multispace0.parse_next(input)?;
    let (value, value_span) = cut_err(value)
        .context(expected(
            "a value: a number, a \"quoted text\", a date such as 2026-12-01 or a name",
        ))
        .with_span()
        .parse_next(input)?;
    Ok(Raw::Test {
        fact: (fact, fact_span.start),
        op,
        value: (value, value_span.start),
    })
}

fn operator(input: &mut Input<'_>) -> ModalResult<Op> {
    alt((
        "!=".value(Op::Ne),
        "<=".value(Op::Le),
        ">=".value(Op::Ge),
        "=".value(Op::Eq),
        "<".value(Op::Lt),
        ">".value(Op::Gt),
    ))
    .parse_next(input)
}

fn value<'a>(input: &mut Input<'a>) -> ModalResult<RawValue<'a>> {
    alt((
        delimited(
            '"',
            take_till(0.., '"'),
            cut_err('"').context(expected("a closing `\"`")),
        )
        .map(RawValue::Text),
        delimited(
            '\'',
            take_till(0.., '\''),
            cut_err('\'').context(expected("a closing `'`")),
        )
        .map(RawValue::Text),
        (digit1, '-', digit1, '-', digit1).take().map(RawValue::Date),
        (opt('-'), digit1).take().map(RawValue::Number),
        word.map(RawValue::Word),
    ))
    .parse_next(input)
}

/// Checks each comparison against its fact's kind: the offset and reason of the first fault.
fn check(raw: &Raw<'_>) -> Result<Rule, (usize, String)> {
    Ok(match raw {
        Raw::And(left, right) => Rule::And(Box::new(check(left)?), Box::new(check(right)?)),
        Raw::Or(left, right) => Rule::Or(Box::new(check(left)?), Box::new(check(right)?)),
        Raw::Not(inner) => Rule::Not(Box::new(check(inner)?)),
        Raw::Test { fact, op, value } => Rule::Test(check_test(*fact, *op, value)?),
    })
}

fn names<T>(list: &[(&str, T)]) -> String {
    list.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

fn check_test(
    (name, at): (&str, usize),
    op: Op,
    (value, value_at): &(RawValue<'_>, usize),
) -> Result<Test, (usize, String)> {
    let Some((_, fact, kind)) = FACTS.iter().find(|(known, _, _)| *known == name) else {
        let known: Vec<&str> = FACTS.iter().map(|(known, _, _)| *known).collect();
        return Err((
            at,
            format!("unknown field {}; the fields are {}", quote(name), known.join(", ")),
        ));
    };
    let ordered = !matches!(kind, Kind::Text | Kind::Channel);
    if !ordered && !matches!(op, Op::Eq | Op::Ne) {
        return Err((at, format!("{name} is compared with = or != only")));
    }
    let wrong = |what: &str| Err((*value_at, format!("{name} is compared with {what}")));
    let value = match (kind, value) {
        (Kind::Text, RawValue::Text(text)) => Value::Text((*text).to_owned()),
        (Kind::Text, _) => return wrong("a \"quoted text\""),
        (Kind::Number, RawValue::Number(number)) => match number.parse::<i64>() {
            Ok(age) if *fact == Fact::Age && !(0..=MAX_AGE).contains(&age) => {
                return Err((*value_at, format!("an age is 0-{MAX_AGE}")));
            }
            Ok(number) => Value::Number(number),
            Err(_) => return Err((*value_at, format!("{number} is too large a number"))),
        },
        (Kind::Number, _) => return wrong("a whole number"),
        (Kind::Date, RawValue::Date(date)) => match NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            Ok(date) => Value::Date(date),
            Err(_) => return Err((*value_at, format!("{date} is not a date in the form YYYY-MM-DD"))),
        },
        (Kind::Date, _) => return wrong("a date such as 2026-12-01"),
        (Kind::Channel, RawValue::Word(word)) => match CHANNELS.iter().find(|(known, _)| known == word) {
            Some((_, channel)) => Value::Channel(*channel),
            None => return wrong(&format!("a channel: {}", names(&CHANNELS))),
        },
        (Kind::Channel, _) => return wrong(&format!("a channel: {}", names(&CHANNELS))),
        (Kind::Stage, RawValue::Word(word)) => match STAGES.iter().find(|(known, _)| known == word) {
            Some((_, stage)) => Value::Stage(*stage),
            None => return wrong(&format!("a stage: {}", names(&STAGES))),
        },
        (Kind::Stage, _) => return wrong(&format!("a stage: {}", names(&STAGES))),
    };
    Ok(Test { fact: *fact, op, value })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn test(fact: Fact, op: Op, value: Value) -> Rule {
        Rule::Test(Test { fact, op, value })
    }

    fn fault(text: &str) -> String {
        parse("rule", text).unwrap_err().description
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let parsed = parse(
            "rule",
            "tag = \"koc\" or not stage >= purchased and\n  enrolled < 2026-01-01",
        )
        .unwrap();
        let expected = Rule::Or(
            Box::new(test(Fact::Tag, Op::Eq, Value::Text("koc".into()))),
            Box::new(Rule::And(
                Box::new(Rule::Not(Box::new(test(
                    Fact::Stage,
                    Op::Ge,
                    Value::Stage(Stage::Purchased),
                )))),
                Box::new(test(
                    Fact::Enrolled,
                    Op::Lt,
                    Value::Date(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
                )),
            )),
        );
        assert_eq!(parsed, expected);
        let grouped = parse("rule", "(channel = tmall or channel != jd) and spend>=-5").unwrap();
        let Rule::And(left, right) = grouped else {
            panic!("{grouped:?}")
        };
        assert!(matches!(*left, Rule::Or(_, _)));
        assert_eq!(*right, test(Fact::Spend, Op::Ge, Value::Number(-5)));
        assert_eq!(
            parse("rule", "city = 'Hangzhou'").unwrap(),
            test(Fact::City, Op::Eq, Value::Text("Hangzhou".into()))
        );
    }

    #[test]
    fn faults_name_their_line_and_column() {
        assert_eq!(
            fault("spend >= 100 and\n  spnd < 5"),
            "line 2, column 3: unknown field \"spnd\"; the fields are tier, tag, channel, points, recency_days, frequency, spend, city, age, enrolled, store, guide, stage"
        );
        assert!(
            fault("spend >= 100 and").starts_with("line 1, column 17: expected a comparison"),
            "{}",
            fault("spend >= 100 and")
        );
        assert!(
            fault("spend 100").starts_with("line 1, column 7: expected a comparison operator"),
            "{}",
            fault("spend 100")
        );
        assert_eq!(
            fault("city > \"x\""),
            "line 1, column 1: city is compared with = or != only"
        );
        assert_eq!(
            fault("spend >= \"a lot\""),
            "line 1, column 10: spend is compared with a whole number"
        );
        assert_eq!(
            fault("channel = taobao"),
            "line 1, column 11: channel is compared with a channel: tmall, jd, douyin, wechat_mall, store, other"
        );
        assert_eq!(
            fault("enrolled > 2026-02-30"),
            "line 1, column 12: 2026-02-30 is not a date in the form YYYY-MM-DD"
        );
        assert!(
            fault("(tag = \"a\"").contains("expected `)`"),
            "{}",
            fault("(tag = \"a\"")
        );
        assert!(
            fault("tag = \"a\" tag = \"b\"").starts_with("line 1, column 11: unexpected \"tag\""),
            "{}",
            fault("tag = \"a\" tag = \"b\"")
        );
        assert!(
            fault("city = \"Shang").contains("closing"),
            "{}",
            fault("city = \"Shang")
        );
        assert_eq!(fault("  "), "is required");
        assert!(fault(&"(".repeat(40)).contains("nests more than 32 deep"));
        assert!(fault("points > 99999999999999999999").contains("too large"));
        assert_eq!(fault("age >= 200"), "line 1, column 8: an age is 0-150");
        assert!(
            fault("city = \"上海\" and spnd > 1").starts_with("line 1, column 17: unknown field"),
            "columns count characters, not bytes"
        );
    }

    #[test]
    fn an_age_is_reached_on_the_birthday() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(born_by(day(2026, 12, 3), 30), day(1996, 12, 3));
        assert_eq!(born_by(day(2028, 2, 29), 1), day(2027, 2, 28));
        assert_eq!(Op::Lt.flipped(), Op::Gt);
        assert_eq!(Op::Ne.flipped(), Op::Ne);
    }

    proptest! {
        /// Whatever is sent, a rule parses or is refused with a position inside the text; nothing
        /// panics.
        #[test]
        fn any_text_parses_or_names_a_place_in_it(text in "[a-z_ =!<>()'\"0-9\n-]{0,80}") {
            match parse("rule", &text) {
                Ok(_) => {}
                Err(violation) if text.trim().is_empty() => prop_assert_eq!(violation.description, "is required"),
                Err(violation) => {
                    let (line, rest) = violation.description.strip_prefix("line ").unwrap().split_once(", column ").unwrap();
                    let column: usize = rest.split(':').next().unwrap().parse().unwrap();
                    let line: usize = line.parse().unwrap();
                    let lines: Vec<&str> = text.split('\n').collect();
                    prop_assert!((1..=lines.len()).contains(&line), "{}", violation.description);
                    prop_assert!(column <= lines[line - 1].chars().count() + 1, "{}", violation.description);
                }
            }
        }
    }
}
