//! What hurts in each scenario: the outcome a user of the program suffers
//! (an orphan that outlives its parent, a zombie, an exit that hangs, a line
//! printed twice). The report colours a run by whether that outcome happened,
//! not by whether the claim held, and brood's cells say what brood did.

use crate::lab::scenarios::{Judgement, Verdict};

/// One scenario's hazard.
#[derive(Debug, Clone, Copy)]
pub struct Hazard {
    /// The claim verdict of a run in which the hazard happened.
    pub when: Verdict,
    /// A control: a variant that shows the claim's boundary (`join` instead
    /// of `os.wait`, an `else:` branch), not counted in the claim's verdict.
    pub control: bool,
    /// The hazard, short (English, Chinese).
    pub what: (&'static str, &'static str),
    /// What a run did when the hazard did not happen (English, Chinese).
    pub safe: (&'static str, &'static str),
    /// What a run did when it did (English, Chinese).
    pub hurt: (&'static str, &'static str),
}

/// How one run came out, for the user of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The hazard did not happen.
    Safe,
    /// The hazard happened.
    Hurt,
    /// It happened in part.
    Partly,
    /// The run could not tell.
    Unknown,
}

const fn h(
    when: Verdict,
    what: (&'static str, &'static str),
    safe: (&'static str, &'static str),
    hurt: (&'static str, &'static str),
) -> Hazard {
    Hazard {
        when,
        control: false,
        what,
        safe,
        hurt,
    }
}

const fn control(h: Hazard) -> Hazard {
    Hazard { control: true, ..h }
}

use Verdict::{DoesNotHold as NOT, Holds as HOLDS};

const EXIT_BLOCKS: Hazard = h(
    HOLDS,
    (
        "the exit waits on a running child",
        "退出要等仍在运行的子进程",
    ),
    ("ended at exit", "退出时结束"),
    ("exit waited", "退出等待"),
);
const LEFT_RUNNING: Hazard = h(
    NOT,
    (
        "a child left running after the exit",
        "退出后子进程仍在运行",
    ),
    ("ended at exit", "退出时结束"),
    ("left running", "仍在运行"),
);
const ORPHAN_KILLED: Hazard = h(
    HOLDS,
    (
        "the child outlives its killed parent",
        "主进程被杀后子进程仍在运行",
    ),
    ("ended with parent", "随主进程结束"),
    ("lives on", "继续运行"),
);
const PARENT_DIES: Hazard = h(
    NOT,
    ("the parent dies with its child", "子进程被杀时主进程也停止"),
    ("parent ran on", "主进程继续"),
    ("parent died", "主进程停止"),
);
const ZOMBIE: Hazard = h(
    HOLDS,
    (
        "a zombie until the parent ends",
        "僵尸进程一直留到主进程结束",
    ),
    ("reaped", "已回收"),
    ("zombie stays", "僵尸留存"),
);
const ORPHAN_EXIT: Hazard = h(
    HOLDS,
    (
        "the child outlives its parent",
        "主进程退出后子进程仍在运行",
    ),
    ("ended with parent", "随主进程结束"),
    ("lives on", "继续运行"),
);
const UNWATCHED_EXIT: Hazard = h(
    HOLDS,
    (
        "the parent exits, its child unwatched",
        "主进程退出，子进程无人看管",
    ),
    ("waited for it", "等待子进程"),
    ("exited first", "先行退出"),
);
const TWICE: Hazard = h(
    HOLDS,
    ("the parent's code runs twice", "父进程的代码执行两次"),
    ("ran once", "执行一次"),
    ("ran twice", "执行两次"),
);
const ERROR_AT_EXIT: Hazard = h(
    HOLDS,
    ("an error at exit", "退出时报错"),
    ("no error", "无报错"),
    ("error at exit", "退出时报错"),
);

/// The hazard of the scenario `key`.
pub fn of(key: &str) -> Hazard {
    let claim = key.split_once('.').map(|k| k.0).unwrap_or(key);
    match (claim, key) {
        ("P1", _) => EXIT_BLOCKS,
        ("P2" | "X2", _) => LEFT_RUNNING,
        (_, "P3.term-parent" | "P3.kill-parent" | "F4.term-parent" | "F4.kill-parent")
        | (_, "S3.term-parent" | "S3.kill-parent") => ORPHAN_KILLED,
        ("P3" | "F4" | "S3", _) => PARENT_DIES,
        ("P4" | "F5" | "S4", _) => ZOMBIE,
        (_, "P5.join") => control(h(
            NOT,
            ERROR_AT_EXIT.what,
            ERROR_AT_EXIT.safe,
            ERROR_AT_EXIT.hurt,
        )),
        ("P5", _) => h(
            HOLDS,
            (
                "an error at exit (or a wait that never returns)",
                "退出时报错（或 wait 一直不返回）",
            ),
            ("no error", "无报错"),
            ("error at exit", "退出时报错"),
        ),
        ("F1" | "S1", _) => UNWATCHED_EXIT,
        ("F2" | "S2" | "X1" | "N2", _) => ORPHAN_EXIT,
        (_, "F3.else") => control(h(NOT, TWICE.what, TWICE.safe, TWICE.hurt)),
        ("F3", _) => TWICE,
        ("N1", _) => h(
            HOLDS,
            ("the exit hangs", "退出挂起"),
            ("exit did not hang", "退出未挂起"),
            ("exit hung", "退出挂起"),
        ),
        ("N3", _) => h(
            HOLDS,
            ("a wrong answer instead of an error", "给出错误答案而不报错"),
            ("Err(ReapedElsewhere)", "Err(ReapedElsewhere)"),
            ("wrong answer", "错误答案"),
        ),
        ("N4", _) => h(
            HOLDS,
            ("grandchildren outlive the child", "孙进程比子进程活得久"),
            ("tree ended", "整棵树结束"),
            ("grandchild lives", "孙进程存活"),
        ),
        ("N5", _) => h(
            HOLDS,
            ("map() hangs", "map() 挂起"),
            ("map failed fast", "map 立即报错"),
            ("map hung", "map 挂起"),
        ),
        ("N6", _) => h(
            NOT,
            ("SIGINT skips the exit handling", "SIGINT 跳过退出处理"),
            ("handled at exit", "退出处理已执行"),
            ("children left", "子进程留下"),
        ),
        ("N7", _) => h(
            HOLDS,
            ("a line printed twice", "一行输出两次"),
            ("printed once", "输出一次"),
            ("printed twice", "输出两次"),
        ),
        ("N8", _) => h(
            NOT,
            ("a signal to a reaped pid", "向已回收的 pid 发信号"),
            ("live children only", "只发给存活子进程"),
            ("signalled a reaped pid", "向已回收 pid 发信号"),
        ),
        ("N9", _) => ZOMBIE,
        ("N10", _) => h(
            HOLDS,
            ("a child left running, unremarked", "子进程仍在运行且无提示"),
            ("remarked", "有提示"),
            ("unremarked", "无提示"),
        ),
        ("N11", _) => h(
            NOT,
            (
                "a helper process that can outlive the parent",
                "可能比主进程活得久的辅助进程",
            ),
            ("no helper", "无辅助进程"),
            ("helper process", "有辅助进程"),
        ),
        _ => h(HOLDS, ("?", "?"), ("?", "?"), ("?", "?")),
    }
}

/// How a run with judgement `j` came out in scenario `key`. A blocked wait
/// (P5 under forkserver) is a hang: hurt whatever the claim's verdict.
pub fn outcome(key: &str, j: &Judgement) -> Outcome {
    match j.verdict {
        Verdict::Partly => Outcome::Partly,
        Verdict::Inconclusive => Outcome::Unknown,
        _ if j.evidence.starts_with("blocks:") => Outcome::Hurt,
        v if v == of(key).when => Outcome::Hurt,
        _ => Outcome::Safe,
    }
}

/// What a run did, in a few words (brood's cells).
pub fn did(key: &str, j: &Judgement, zh: bool) -> &'static str {
    let h = of(key);
    let pick = |p: (&'static str, &'static str)| if zh { p.1 } else { p.0 };
    match outcome(key, j) {
        Outcome::Safe => pick(h.safe),
        Outcome::Hurt if j.evidence.starts_with("blocks:") => pick(("wait blocks", "wait 阻塞")),
        Outcome::Hurt => pick(h.hurt),
        Outcome::Partly => pick(("partly", "部分")),
        Outcome::Unknown => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_its_hazard() {
        for s in crate::lab::scenarios::all() {
            assert_ne!(of(s.key).what.0, "?", "{}", s.key);
        }
    }
}
