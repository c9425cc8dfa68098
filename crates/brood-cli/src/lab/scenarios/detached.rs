//! The rows that `os.fork` (F1, F2, F4, F5) and `subprocess.Popen` (S1–S4)
//! share: the same experiments on a detached child, under different claim ids.
//! Written once here; `fork.rs` and `popen.rs` name their claims and kind.
//!
//! A macro rather than a function because a scenario's texts are `&'static str`
//! built with `concat!`.

/// Rows for "the parent can exit without waiting" and "the child keeps running
/// after the parent exits": `$exits` and `$lives` are the claim ids, `$play`
/// the brood side's kind (`"fork"`, `"popen"`).
macro_rules! parent_leaves_rows {
    ($kind:expr_2021, $play:literal, $exits:literal, $lives:literal) => {
        vec![
            Scenario {
                claim: $exits,
                key: concat!($exits, ".exit"),
                variant: "child runs 1 s; parent's main returns",
                kind: $kind,
                mode: &["exit", "secs=1.0"],
                interp: super::Interp::PLAIN,
                sweep: false,
                drive: drive_exit,
                judge: judge_exits_without_waiting,
                brood: Some(BroodPlay {
                    default: &[$play, "exit", "secs=1.0"],
                    policy: Some(("OnExit::Wait", &[$play, "exit", "secs=1.0", "on_exit=wait"])),
                }),
            },
            Scenario {
                claim: $lives,
                key: concat!($lives, ".exit"),
                variant: "child runs 1 s; parent's main returns",
                kind: $kind,
                mode: &["exit", "secs=1.0"],
                interp: super::Interp::PLAIN,
                sweep: false,
                drive: drive_exit,
                judge: judge_child_lives_on,
                brood: Some(BroodPlay {
                    default: &[$play, "exit", "secs=1.0"],
                    policy: Some((
                        "OnParentDeath::Signal(KILL)",
                        &[$play, "exit", "secs=1.0", "on_parent_death=kill"],
                    )),
                }),
            },
        ]
    };
}

/// Rows for "signals as in P3" (`$signals`) and "zombies as in P4" (`$zombies`).
macro_rules! signals_and_zombies_rows {
    ($kind:expr_2021, $play:literal, $signals:literal, $zombies:literal) => {{
        let row = |claim, key, variant, mode, drive, judge, brood| Scenario {
            claim,
            key,
            variant,
            kind: $kind,
            mode,
            interp: super::Interp::PLAIN,
            sweep: false,
            drive,
            judge,
            brood: Some(brood),
        };
        let kill_on_parent_death = Some((
            "OnParentDeath::Signal(KILL)",
            &[$play, "signal_parent", "on_parent_death=kill"] as &'static [&'static str],
        ));
        let signal_child = BroodPlay {
            default: &[$play, "signal_child"],
            policy: None,
        };
        vec![
            row(
                $signals,
                concat!($signals, ".term-parent"),
                "SIGTERM to the parent",
                &["signal_parent"] as &'static [&'static str],
                drive_term_parent
                    as fn(&mut crate::lab::observe::Run) -> Result<(), crate::lab::observe::Abort>,
                judge_parent_signaled
                    as fn(&crate::lab::observe::Obs) -> crate::lab::scenarios::Judgement,
                BroodPlay {
                    default: &[$play, "signal_parent"],
                    policy: kill_on_parent_death,
                },
            ),
            row(
                $signals,
                concat!($signals, ".kill-parent"),
                "SIGKILL to the parent",
                &["signal_parent"],
                drive_kill_parent,
                judge_parent_signaled,
                BroodPlay {
                    default: &[$play, "signal_parent"],
                    policy: kill_on_parent_death,
                },
            ),
            row(
                $signals,
                concat!($signals, ".term-child"),
                "SIGTERM to the child; the parent waits for it",
                &["signal_child"],
                drive_term_child,
                judge_child_signaled,
                signal_child,
            ),
            row(
                $signals,
                concat!($signals, ".kill-child"),
                "SIGKILL to the child; the parent waits for it",
                &["signal_child"],
                drive_kill_child,
                judge_child_signaled,
                signal_child,
            ),
            row(
                $zombies,
                concat!($zombies, ".zombie-self"),
                "child exits at once; never waited for",
                &["zombie", "secs=0"],
                drive_zombie,
                judge_zombie,
                BroodPlay {
                    default: &[$play, "zombie", "secs=0"],
                    policy: None,
                },
            ),
            row(
                $zombies,
                concat!($zombies, ".zombie-killed"),
                "child SIGKILLed by the lab; never waited for",
                &["zombie", "secs=30"],
                drive_zombie_killed,
                judge_zombie,
                BroodPlay {
                    default: &[$play, "zombie", "secs=30"],
                    policy: None,
                },
            ),
        ]
    }};
}
