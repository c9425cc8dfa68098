//! The claims the lab measures: the field report's rows (P1–P5, F1–F5, S1–S4,
//! X1–X2) and the cases it does not cover (N1–N11), each with an English and a
//! Chinese text. The report itself (2016) was written in Chinese; the Chinese
//! texts here are brood's own short phrasing of each claim, not quotations.

use serde::Serialize;

/// One claim: a hypothesis the lab tests, never a fact it assumes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Claim {
    /// Stable id: `P1`…`P5`, `F1`…`F5`, `S1`…`S4`, `X1`, `X2`, `N1`….
    pub id: &'static str,
    /// Which kind of child the claim is about.
    pub family: &'static str,
    /// The claim in English.
    pub en: &'static str,
    /// The claim in Chinese.
    pub zh: &'static str,
}

/// Language of the claim texts in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// English.
    En,
    /// Chinese, the language of the original report.
    Zh,
}

impl Claim {
    /// The text in `lang`.
    pub fn text(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Zh => self.zh,
        }
    }
}

const PROCESS: &str = "multiprocessing.Process";
const FORK: &str = "os.fork";
const POPEN: &str = "subprocess.Popen";
const EXIT: &str = "os._exit / sys.exit";
const EXTRA: &str = "not covered by the report";

/// Every claim, in report order.
pub const CLAIMS: &[Claim] = &[
    Claim {
        id: "P1",
        family: PROCESS,
        en: "daemon=False: a child still running when the parent's main logic is done delays the parent's exit until it ends",
        zh: "daemon=False：主进程逻辑结束时若子进程仍在运行，主进程要等子进程结束后才退出",
    },
    Claim {
        id: "P2",
        family: PROCESS,
        en: "daemon=True: when the parent's main logic is done, the parent ends its running children at once and exits",
        zh: "daemon=True：主进程逻辑结束时立即终止仍在运行的子进程，然后退出",
    },
    Claim {
        id: "P3",
        family: PROCESS,
        en: "SIGTERM/SIGKILL to the parent stops it and the child keeps running; to the child stops it and the parent keeps running",
        zh: "向主进程发 SIGTERM/SIGKILL：主进程停止，子进程继续运行；向子进程发：子进程停止，主进程继续运行",
    },
    Claim {
        id: "P4",
        family: PROCESS,
        en: "a child that ended and was never waited for is a zombie (state Z) until the parent ends",
        zh: "子进程结束而主进程从未 wait/join，子进程成为僵尸（状态 Z），直到主进程结束",
    },
    Claim {
        id: "P5",
        family: PROCESS,
        en: "daemon=True plus os.wait()/os.waitpid() in the parent: the parent raises OSError [Errno 3] at exit; join() does not",
        zh: "daemon=True 时主进程调用 os.wait()/os.waitpid()，退出时抛出 OSError [Errno 3]；join() 则不会",
    },
    Claim {
        id: "F1",
        family: FORK,
        en: "the parent can exit without waiting for the child",
        zh: "主进程无需等待子进程即可退出",
    },
    Claim {
        id: "F2",
        family: FORK,
        en: "the child keeps running after the parent exits",
        zh: "主进程退出后，子进程继续运行",
    },
    Claim {
        id: "F3",
        family: FORK,
        en: "code after the child's if-block runs twice, once in each process, unless the parent's part is in an else: branch",
        zh: "子进程代码块之后的代码会执行两次（父子各一次），除非父进程部分写在 else 分支里",
    },
    Claim {
        id: "F4",
        family: FORK,
        en: "signals as in P3: the parent's death spares the child, the child's death spares the parent",
        zh: "信号行为同 P3：主进程被杀不影响子进程，子进程被杀不影响主进程",
    },
    Claim {
        id: "F5",
        family: FORK,
        en: "zombies as in P4: an ended child not waited for stays in state Z until the parent ends",
        zh: "僵尸同 P4：结束而未被 wait 的子进程保持 Z 状态，直到主进程结束",
    },
    Claim {
        id: "S1",
        family: POPEN,
        en: "the parent can exit without waiting for the child",
        zh: "主进程无需等待子进程即可退出",
    },
    Claim {
        id: "S2",
        family: POPEN,
        en: "the child keeps running after the parent exits",
        zh: "主进程退出后，子进程继续运行",
    },
    Claim {
        id: "S3",
        family: POPEN,
        en: "signals as in P3: the parent's death spares the child, the child's death spares the parent",
        zh: "信号行为同 P3：主进程被杀不影响子进程，子进程被杀不影响主进程",
    },
    Claim {
        id: "S4",
        family: POPEN,
        en: "zombies as in P4: an ended child not waited for (wait/communicate) stays in state Z until the parent ends",
        zh: "僵尸同 P4：结束而未被 wait/communicate 的子进程保持 Z 状态，直到主进程结束",
    },
    Claim {
        id: "X1",
        family: EXIT,
        en: "os._exit() acts like SIGTERM/SIGKILL on the caller: it leaves at once and its children are not touched",
        zh: "os._exit() 的效果等同于向自身发 SIGTERM/SIGKILL：立即退出，子进程不受影响",
    },
    Claim {
        id: "X2",
        family: EXIT,
        en: "sys.exit() acts like the main logic finishing: it waits for daemon=False children and ends daemon=True ones",
        zh: "sys.exit() 的效果等同于主逻辑执行完毕：等待 daemon=False 的子进程，终止 daemon=True 的子进程",
    },
    Claim {
        id: "N1",
        family: EXTRA,
        en: "a daemon child that ignores SIGTERM makes the parent's exit hang",
        zh: "忽略 SIGTERM 的守护子进程会让主进程退出时挂起",
    },
    Claim {
        id: "N2",
        family: EXTRA,
        en: "a parent SIGKILLed while its child is still starting leaves that child running",
        zh: "子进程尚在启动时主进程被 SIGKILL，子进程仍会继续运行",
    },
    Claim {
        id: "N3",
        family: EXTRA,
        en: "when someone else reaps the child (waitpid(-1), SIGCHLD ignored), the parent's poll()/is_alive() give a wrong answer rather than an error",
        zh: "子进程被别处回收（waitpid(-1) 或忽略 SIGCHLD）后，poll()/is_alive() 给出错误答案而不是报错",
    },
    Claim {
        id: "N4",
        family: EXTRA,
        en: "terminating a child does not reach the child's own children: grandchildren keep running",
        zh: "终止子进程不会波及它自己的子进程：孙进程继续运行",
    },
    Claim {
        id: "N5",
        family: EXTRA,
        en: "a Pool whose worker dies mid-task hangs map() instead of failing",
        zh: "进程池的工作进程在任务中途死亡时，map() 会挂起而不是报错",
    },
    Claim {
        id: "N6",
        family: EXTRA,
        en: "SIGINT to the parent alone (its pid, not its group) runs its exit handlers as the main logic ending does: daemon=True children are ended, daemon=False ones waited for",
        zh: "只向主进程本身（其 pid，而非进程组）发送 SIGINT 时，退出处理如同主逻辑执行完毕一样执行：终止 daemon=True 的子进程，等待 daemon=False 的子进程",
    },
    Claim {
        id: "N7",
        family: EXTRA,
        en: "a line printed before the child is made, while stdout is a block-buffered pipe, appears twice: once from each process",
        zh: "标准输出是块缓冲的管道时，创建子进程之前打印的一行会出现两次：父子进程各输出一次",
    },
    Claim {
        id: "N8",
        family: EXTRA,
        en: "at exit, the parent's handlers signal only children that still run: never the pid of a child already reaped (by os.waitpid() or by anyone else)",
        zh: "主进程退出时，退出处理只向仍在运行的子进程发送信号，绝不会发给已被回收（被 os.waitpid() 或其他进程回收）的子进程的 pid",
    },
    Claim {
        id: "N9",
        family: EXTRA,
        en: "only an explicit wait (join, wait, os.waitpid) ends a zombie: looking at the child, starting another one or dropping the handle leaves it in state Z",
        zh: "只有显式等待（join、wait、os.waitpid）才能结束僵尸进程：查询子进程、再启动一个子进程或丢弃句柄都不会改变其 Z 状态",
    },
    Claim {
        id: "N10",
        family: EXTRA,
        en: "a Popen child still running when the parent exits goes unremarked: nothing is printed, even with -W always",
        zh: "主进程退出时仍在运行的 Popen 子进程不会引起任何提示：即使加上 -W always 也什么都不打印",
    },
    Claim {
        id: "N11",
        family: EXTRA,
        en: "a multiprocessing parent starts no helper process besides the children it asks for (so none can outlive it)",
        zh: "multiprocessing 主进程除了所请求的子进程之外不会启动任何辅助进程（因此也没有辅助进程会比它活得更久）",
    },
];

/// The claim with this id.
pub fn find(id: &str) -> Option<&'static Claim> {
    CLAIMS.iter().find(|c| c.id.eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_texts_present() {
        for (i, c) in CLAIMS.iter().enumerate() {
            assert!(!c.en.is_empty() && !c.zh.is_empty());
            assert!(CLAIMS[i + 1..].iter().all(|d| d.id != c.id), "{}", c.id);
        }
        assert_eq!(find("p3").map(|c| c.id), Some("P3"));
    }
}
