//! What the command prints reaches the user's terminal through this filter.
//!
//! A terminal is not a passive display: some control sequences write the
//! system clipboard (OSC 52), save files (iTerm2's `File=`), program function
//! keys (DECUDK), or make the terminal *answer* with a string the command chose
//! (the window title via `CSI 21 t`, a setting via DECRQSS) — and the answer
//! arrives on the terminal's input as if the user had typed it. Those are
//! dropped by default; everything else (colours, cursor movement, the
//! alternate screen, mouse and paste modes, titles, hyperlinks, prompts,
//! numeric reports) passes byte for byte.
//!
//! The parser follows the DEC/ECMA-48 state machine terminals implement
//! (Paul Williams' VT500 parser): ESC and the 8-bit C1 forms (raw bytes
//! 0x80–0x9F outside a UTF-8 character, or U+0080–U+009F encoded as UTF-8)
//! introduce sequences anywhere, an ESC or C1 introducer aborts a string,
//! CAN/SUB cancel. Sequences split across reads are handled: the state
//! survives between `feed` calls. Memory is bounded: only the prefix that
//! decides a sequence's fate is held (`MAX_PREFIX`); a string that is passed
//! streams through, one that is dropped is skipped, so a gigabyte OSC costs
//! nothing but is never reassembled.
//!
//! Keeping the terminal in step: a dropped sequence is never seen by the
//! terminal at all, so both parsers return to ground together. When a passed
//! string (say a title) is aborted by a sequence that is then dropped, the
//! filter emits CAN so the terminal also leaves the string.

use crate::profile::types::TermSeq;
use std::os::fd::BorrowedFd;

/// Write filtered bytes whole to the user's terminal (or whatever stands on
/// that descriptor); EINTR is retried, any other error ends the write (the
/// terminal is gone: nothing else to do with the bytes).
pub fn write_all(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(w) if w > 0 => data = &data[w..],
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// The longest prefix held to decide a sequence (CSI parameters, an OSC
/// number and iTerm2 key, DCS parameters). Longer: the sequence is dropped.
pub const MAX_PREFIX: usize = 1024;
/// An OSC/DCS string that is dropped is skipped until its terminator, or for
/// at most this many bytes, after which the filter is back in ground (the
/// terminal never saw the start, so it is in ground too).
pub const MAX_DROPPED_STRING: usize = 64 * 1024;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
const ENQ: u8 = 0x05;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrKind {
    Osc,
    Dcs,
    /// SOS, PM, APC: strings no terminal answers (kitty graphics use APC).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC (or ESC + intermediates); `pending` holds the bytes.
    Esc,
    /// CSI parameters/intermediates in `pending`, until the final byte.
    Csi,
    /// CSI too long or malformed: skip until its final byte.
    CsiDrop,
    /// OSC/DCS introducer and prefix in `pending`, until its fate is known.
    StrPrefix(StrKind),
    /// A string being passed through; `StrEsc` = saw ESC inside it.
    StrPass(StrKind),
    StrPassEsc(StrKind),
    /// A string being dropped.
    StrDrop(StrKind),
    StrDropEsc(StrKind),
    /// Inside an allowed tmux passthrough (`DCS tmux; … ST`): the payload,
    /// with tmux's doubled ESCs undone, goes through a filter of its own.
    Tmux,
    TmuxEsc,
}

/// One unit of input: a byte, or a C1 control with its raw encoding
/// (1 byte, or 2 when UTF-8 encoded as C2 80..9F).
#[derive(Debug, Clone, Copy)]
enum Unit {
    Byte(u8),
    C1(u8, [u8; 2], usize),
}

/// The streaming filter. `feed` what the command wrote; pass `out` to the terminal.
#[derive(Debug, Clone)]
pub struct TermFilter {
    allow: Vec<TermSeq>,
    state: State,
    pending: Vec<u8>,
    /// Bytes of the dropped string skipped so far.
    dropped_len: usize,
    /// Remaining UTF-8 continuation bytes expected.
    utf8_need: u8,
    /// A C2 byte held to see whether it starts a UTF-8 encoded C1 control.
    held_c2: bool,
    /// A passed string was aborted: the terminal is still inside it until it sees ESC, C1 or CAN.
    string_open: bool,
    /// The filter for an allowed tmux passthrough's payload.
    inner: Option<Box<TermFilter>>,
    /// How many sequences were dropped.
    pub dropped: usize,
}

impl TermFilter {
    /// A filter that drops every `TermSeq` except what `passthrough` names.
    pub fn new(passthrough: &[TermSeq]) -> TermFilter {
        TermFilter {
            allow: passthrough.to_vec(),
            state: State::Ground,
            pending: Vec::with_capacity(64),
            dropped_len: 0,
            utf8_need: 0,
            held_c2: false,
            string_open: false,
            inner: None,
            dropped: 0,
        }
    }

    fn allowed(&self, s: TermSeq) -> bool {
        self.allow.contains(&s)
    }

    /// Filter one chunk; what may reach the terminal is appended to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < input.len() {
            // Fast path: a run of printable ASCII and ordinary whitespace in ground.
            if self.state == State::Ground && !self.held_c2 && self.utf8_need == 0 {
                let run = plain_run(&input[i..]);
                if run > 0 {
                    self.emit(out, &input[i..i + run]);
                    i += run;
                    continue;
                }
            }
            let b = input[i];
            i += 1;
            if self.held_c2 {
                self.held_c2 = false;
                if (0x80..=0x9f).contains(&b) {
                    self.utf8_need = 0;
                    self.unit(Unit::C1(b, [0xc2, b], 2), out);
                    continue;
                }
                // Not a C1: the C2 was an ordinary lead byte.
                self.utf8_need = 1;
                self.unit(Unit::Byte(0xc2), out);
            }
            if self.utf8_need > 0 {
                if (0x80..=0xbf).contains(&b) {
                    self.utf8_need -= 1;
                    self.unit(Unit::Byte(b), out);
                    continue;
                }
                self.utf8_need = 0;
            }
            match b {
                0xc2 => self.held_c2 = true,
                0x80..=0x9f => self.unit(Unit::C1(b, [b, 0], 1), out),
                0xc3..=0xdf => {
                    self.utf8_need = 1;
                    self.unit(Unit::Byte(b), out)
                }
                0xe0..=0xef => {
                    self.utf8_need = 2;
                    self.unit(Unit::Byte(b), out)
                }
                0xf0..=0xf4 => {
                    self.utf8_need = 3;
                    self.unit(Unit::Byte(b), out)
                }
                _ => self.unit(Unit::Byte(b), out),
            }
        }
    }

    /// End of output: an undecided sequence prefix is dropped (it was never
    /// complete), a held byte is released.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.held_c2 {
            self.held_c2 = false;
            self.unit(Unit::Byte(0xc2), out);
        }
        if matches!(
            self.state,
            State::Esc | State::Csi | State::StrPrefix(_) | State::CsiDrop
        ) && !self.pending.is_empty()
        {
            self.drop_pending(out);
        }
        if let Some(mut inner) = self.inner.take() {
            let mut o = Vec::new();
            inner.finish(&mut o);
            self.dropped += inner.dropped;
            self.emit_tmux(out, &o);
        }
        self.state = State::Ground;
    }

    /// Inner output back into tmux's form: every ESC doubled.
    fn emit_tmux(&mut self, out: &mut Vec<u8>, inner: &[u8]) {
        if inner.is_empty() {
            return;
        }
        self.string_open = false;
        for &b in inner {
            if b == ESC {
                out.push(ESC);
            }
            out.push(b);
        }
    }

    fn tmux_unit(&mut self, u: Unit, out: &mut Vec<u8>) {
        let escaped = self.state == State::TmuxEsc;
        self.state = State::Tmux;
        let mut o = Vec::new();
        match (escaped, u) {
            (false, Unit::Byte(ESC)) => self.state = State::TmuxEsc,
            (true, Unit::Byte(ESC)) => {
                if let Some(inner) = self.inner.as_mut() {
                    inner.feed(&[ESC], &mut o);
                }
            }
            (true, Unit::Byte(b'\\')) => {
                if let Some(mut inner) = self.inner.take() {
                    inner.finish(&mut o);
                    self.dropped += inner.dropped;
                }
                self.emit_tmux(out, &o);
                self.emit(out, &[ESC, b'\\']);
                self.state = State::Ground;
                return;
            }
            (true, _) => {
                // ESC + anything else: tmux's passthrough ends here; so does ours.
                if let Some(mut inner) = self.inner.take() {
                    inner.finish(&mut o);
                    self.dropped += inner.dropped;
                }
                self.emit_tmux(out, &o);
                self.string_open = true;
                self.state = State::Ground;
                self.introducer(Unit::Byte(ESC), out);
                self.unit(u, out);
                return;
            }
            (false, Unit::Byte(b)) => {
                if let Some(inner) = self.inner.as_mut() {
                    inner.feed(&[b], &mut o);
                }
            }
            (false, Unit::C1(_, raw, n)) => {
                if let Some(inner) = self.inner.as_mut() {
                    inner.feed(&raw[..n], &mut o);
                }
            }
        }
        self.emit_tmux(out, &o);
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.string_open = false;
            out.extend_from_slice(bytes);
        }
    }

    fn emit_pending(&mut self, out: &mut Vec<u8>) {
        let p = std::mem::take(&mut self.pending);
        self.emit(out, &p);
        self.pending = p;
        self.pending.clear();
    }

    /// The sequence in `pending` is dropped; if a passed string is still open
    /// in the terminal, close it with CAN so both parsers stay in step.
    fn drop_pending(&mut self, out: &mut Vec<u8>) {
        self.dropped += 1;
        if self.string_open {
            self.string_open = false;
            out.push(CAN);
        }
        self.abandon_pending(out);
    }

    /// Forget `pending`. The C0 controls in an escape or CSI sequence are
    /// executed by the terminal as they arrive, so they are kept.
    fn abandon_pending(&mut self, out: &mut Vec<u8>) {
        if matches!(self.state, State::Esc | State::Csi) {
            let c0: Vec<u8> = self
                .pending
                .iter()
                .copied()
                .filter(|b| *b < 0x20 && *b != ESC)
                .collect();
            if !c0.is_empty() {
                if self.string_open {
                    out.push(CAN);
                }
                self.emit(out, &c0);
            }
        }
        self.pending.clear();
    }

    fn esc_has_intermediates(&self) -> bool {
        self.pending[1..].iter().any(|b| (0x20..=0x2f).contains(b))
    }

    fn push(&mut self, u: Unit) {
        match u {
            Unit::Byte(b) => self.pending.push(b),
            Unit::C1(_, raw, n) => self.pending.extend_from_slice(&raw[..n]),
        }
    }

    /// A C1 control or ESC arrives in any state: start the sequence it introduces.
    fn introducer(&mut self, u: Unit, out: &mut Vec<u8>) {
        self.abandon_pending(out);
        match u {
            Unit::Byte(ESC) => {
                self.pending.push(ESC);
                self.state = State::Esc;
            }
            Unit::C1(c, _, _) => {
                self.push(u);
                match c {
                    0x9b => self.state = State::Csi,
                    0x9d => self.state = State::StrPrefix(StrKind::Osc),
                    0x90 => self.state = State::StrPrefix(StrKind::Dcs),
                    0x98 | 0x9e | 0x9f => self.start_string(StrKind::Other, out),
                    // ST outside a string, and the other C1 controls: executed, harmless.
                    _ => {
                        self.emit_pending(out);
                        self.state = State::Ground;
                    }
                }
            }
            Unit::Byte(_) => unreachable!("introducer is ESC or C1"),
        }
    }

    fn start_string(&mut self, kind: StrKind, out: &mut Vec<u8>) {
        self.emit_pending(out);
        self.state = State::StrPass(kind);
    }

    fn unit(&mut self, u: Unit, out: &mut Vec<u8>) {
        // ENQ makes the terminal send its answerback string as input, in any state.
        if matches!(u, Unit::Byte(ENQ)) && !self.allowed(TermSeq::Answerback) {
            self.dropped += 1;
            return;
        }
        match self.state {
            State::Ground => match u {
                Unit::Byte(ESC) | Unit::C1(..) => self.introducer(u, out),
                Unit::Byte(b) => self.emit(out, &[b]),
            },
            State::Esc => match u {
                Unit::Byte(ESC) | Unit::C1(..) => self.introducer(u, out),
                Unit::Byte(b @ (CAN | SUB)) => {
                    self.abandon_pending(out);
                    self.emit(out, &[b]);
                    self.state = State::Ground;
                }
                Unit::Byte(b @ 0x20..=0x2f) => {
                    self.pending.push(b);
                    if self.pending.len() > MAX_PREFIX {
                        self.drop_pending(out);
                        self.state = State::Ground;
                    }
                }
                Unit::Byte(b)
                    if !self.esc_has_intermediates()
                        && matches!(b, b'[' | b']' | b'P' | b'X' | b'^' | b'_') =>
                {
                    self.pending.push(b);
                    match b {
                        b'[' => self.state = State::Csi,
                        b']' => self.state = State::StrPrefix(StrKind::Osc),
                        b'P' => self.state = State::StrPrefix(StrKind::Dcs),
                        _ => self.start_string(StrKind::Other, out),
                    }
                }
                Unit::Byte(b @ 0x30..=0x7e) => {
                    // A complete escape sequence (ESC 7, ESC ( B, ESC \ …): nothing answers with a chosen string.
                    self.pending.push(b);
                    self.emit_pending(out);
                    self.state = State::Ground;
                }
                // C0 controls are executed inside an escape sequence; DEL ignored.
                Unit::Byte(b) if b < 0x20 || b == 0x7f => self.pending.push(b),
                Unit::Byte(_) => {
                    // Not a valid final (a byte above 0x7f): the escape is
                    // void; the byte itself is text again.
                    self.drop_pending(out);
                    self.state = State::Ground;
                    self.unit(u, out);
                }
            },
            State::Csi => match u {
                Unit::Byte(ESC) | Unit::C1(..) => {
                    self.drop_pending(out);
                    self.introducer(u, out)
                }
                Unit::Byte(b @ (CAN | SUB)) => {
                    self.abandon_pending(out);
                    self.emit(out, &[b]);
                    self.state = State::Ground;
                }
                Unit::Byte(b @ 0x40..=0x7e) => {
                    self.pending.push(b);
                    if self.csi_is_title_report() && !self.allowed(TermSeq::TitleReport) {
                        self.drop_pending(out);
                    } else {
                        self.emit_pending(out);
                    }
                    self.state = State::Ground;
                }
                Unit::Byte(b) if b < 0x40 || b == 0x7f => {
                    self.pending.push(b);
                    if self.pending.len() > MAX_PREFIX {
                        self.drop_pending(out);
                        self.state = State::CsiDrop;
                    }
                }
                // Bytes above 0x7f inside a CSI: malformed; the terminal never sees any of it.
                Unit::Byte(_) => {
                    self.drop_pending(out);
                    self.state = State::CsiDrop;
                }
            },
            State::CsiDrop => match u {
                Unit::Byte(ESC) | Unit::C1(..) => self.introducer(u, out),
                Unit::Byte(CAN | SUB) | Unit::Byte(0x40..=0x7e) => self.state = State::Ground,
                Unit::Byte(_) => {}
            },
            State::StrPrefix(kind) => {
                if let Unit::Byte(b @ (CAN | SUB)) = u {
                    self.pending.clear();
                    self.emit(out, &[b]);
                    self.state = State::Ground;
                    return;
                }
                // A terminator or an introducer ends the prefix: decide on what came before it.
                let ends = matches!(u, Unit::Byte(ESC) | Unit::C1(..))
                    || (kind == StrKind::Osc && matches!(u, Unit::Byte(BEL)));
                if !ends {
                    self.push(u);
                }
                match self.decide(kind, ends) {
                    Decision::Undecided if self.pending.len() <= MAX_PREFIX => {}
                    Decision::Undecided | Decision::Drop => {
                        self.drop_pending(out);
                        self.dropped_len = 0;
                        self.state = State::StrDrop(kind);
                        if ends {
                            self.string_unit(kind, false, u, out);
                        }
                    }
                    Decision::Tmux => {
                        self.emit_pending(out);
                        self.inner = Some(Box::new(TermFilter::new(&self.allow)));
                        self.state = State::Tmux;
                        if ends {
                            self.tmux_unit(u, out);
                        }
                    }
                    Decision::Pass => {
                        self.start_string(kind, out);
                        if ends {
                            self.string_unit(kind, true, u, out);
                        }
                    }
                }
            }
            State::Tmux | State::TmuxEsc => self.tmux_unit(u, out),
            State::StrPass(kind) => self.string_unit(kind, true, u, out),
            State::StrDrop(kind) => self.string_unit(kind, false, u, out),
            State::StrPassEsc(kind) | State::StrDropEsc(kind) => {
                let pass = matches!(self.state, State::StrPassEsc(_));
                if matches!(u, Unit::Byte(b'\\')) {
                    if pass {
                        self.emit(out, &[ESC, b'\\']);
                    }
                    self.state = State::Ground;
                } else {
                    // ESC + anything else aborts the string and starts a sequence.
                    let _ = kind;
                    if pass {
                        self.string_open = true;
                    }
                    self.state = State::Ground;
                    self.introducer(Unit::Byte(ESC), out);
                    self.unit(u, out);
                }
            }
        }
    }

    /// One unit inside an OSC/DCS/other string that is passed or dropped.
    fn string_unit(&mut self, kind: StrKind, pass: bool, u: Unit, out: &mut Vec<u8>) {
        match u {
            Unit::Byte(ESC) => {
                self.state = if pass {
                    State::StrPassEsc(kind)
                } else {
                    State::StrDropEsc(kind)
                };
            }
            // ST ends every string; BEL ends an OSC (xterm's form).
            Unit::C1(0x9c, raw, n) => {
                if pass {
                    self.emit(out, &raw[..n]);
                }
                self.state = State::Ground;
            }
            Unit::Byte(BEL) if kind == StrKind::Osc => {
                if pass {
                    self.emit(out, &[BEL]);
                }
                self.state = State::Ground;
            }
            Unit::Byte(b @ (CAN | SUB)) => {
                if pass {
                    self.emit(out, &[b]);
                }
                self.state = State::Ground;
            }
            // Any other C1 introducer aborts the string.
            Unit::C1(..) => {
                if pass {
                    self.string_open = true;
                }
                self.state = State::Ground;
                self.introducer(u, out);
            }
            Unit::Byte(b) => {
                if pass {
                    self.emit(out, &[b]);
                } else {
                    self.dropped_len += 1;
                    if self.dropped_len > MAX_DROPPED_STRING {
                        self.state = State::Ground;
                    }
                }
            }
        }
    }

    /// `pending` holds a complete CSI: is it `CSI 20 t` / `CSI 21 t` (icon label / title report)?
    fn csi_is_title_report(&self) -> bool {
        let body = visible(after_introducer(&self.pending));
        let Some((&b't', params)) = body.split_last() else {
            return false;
        };
        if params
            .iter()
            .any(|b| !(b.is_ascii_digit() || *b == b';' || *b == b':'))
        {
            return false; // private markers or intermediates: another command
        }
        matches!(first_number(params), Some(20 | 21))
    }

    /// Can the fate of the string in `pending` be decided yet?
    fn decide(&self, kind: StrKind, terminated: bool) -> Decision {
        // C0 controls inside a string are ignored by terminals: so here.
        let body = visible(after_introducer(&self.pending));
        match kind {
            StrKind::Other => Decision::Pass,
            StrKind::Osc => self.decide_osc(&body, terminated),
            StrKind::Dcs => self.decide_dcs(&body, terminated),
        }
    }

    fn decide_osc(&self, body: &[u8], terminated: bool) -> Decision {
        let digits = body.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 9 {
            return Decision::Drop;
        }
        let rest = &body[digits..];
        if rest.is_empty() && !terminated {
            return Decision::Undecided;
        }
        if digits == 0 {
            // Non-numeric OSC (old dtterm forms): nothing answers it.
            return Decision::Pass;
        }
        let n: u32 = std::str::from_utf8(&body[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u32::MAX);
        let seq = match n {
            52 | 5522 => Some(TermSeq::Osc52),
            1337 => {
                // iTerm2: the key after "1337;" up to '=' or the end.
                let key = rest.strip_prefix(b";").unwrap_or(rest);
                let end = key.iter().position(|b| *b == b'=' || *b == b';');
                if end.is_none() && !terminated {
                    return if key.len() > 64 {
                        Decision::Pass
                    } else {
                        Decision::Undecided
                    };
                }
                let key = &key[..end.unwrap_or(key.len())];
                match key {
                    b"Copy" | b"CopyToClipboard" => Some(TermSeq::Osc52),
                    b"File" | b"MultipartFile" | b"FilePart" | b"FileEnd" => {
                        Some(TermSeq::FileTransfer)
                    }
                    b"ReportVariable" => Some(TermSeq::VariableReport),
                    _ => None,
                }
            }
            _ => None,
        };
        match seq {
            Some(s) if !self.allowed(s) => Decision::Drop,
            _ => Decision::Pass,
        }
    }

    fn decide_dcs(&self, body: &[u8], terminated: bool) -> Decision {
        // DCS [params 0x30-0x3f] [intermediates 0x20-0x2f] final 0x40-0x7e, then data.
        let params = body
            .iter()
            .take_while(|b| (0x30..=0x3f).contains(*b))
            .count();
        let inters = body[params..]
            .iter()
            .take_while(|b| (0x20..=0x2f).contains(*b))
            .count();
        let Some(&fin) = body.get(params + inters) else {
            return if terminated {
                Decision::Pass
            } else {
                Decision::Undecided
            };
        };
        let inter = &body[params..params + inters];
        let data = &body[params + inters + 1..];
        let seq = match (inter, fin) {
            (b"$", b'q') => Some(TermSeq::Decrqss),
            (b"", b'|') => Some(TermSeq::Decudk),
            (b"", b't') if params == 0 => {
                if data.len() < 4 && !terminated {
                    return Decision::Undecided;
                }
                if !data.starts_with(b"mux;") {
                    None
                } else if self.allowed(TermSeq::TmuxPassthrough) && !terminated {
                    return Decision::Tmux;
                } else {
                    Some(TermSeq::TmuxPassthrough)
                }
            }
            _ => None,
        };
        match seq {
            Some(s) if !self.allowed(s) => Decision::Drop,
            _ => Decision::Pass,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Undecided,
    Pass,
    Drop,
    /// An allowed tmux passthrough: its payload is filtered on its own.
    Tmux,
}

/// The length of the leading run of printable ASCII, ordinary whitespace and
/// complete UTF-8 characters (not C2-led: U+0080..U+009F are C1 controls).
fn plain_run(b: &[u8]) -> usize {
    let mut i = 0;
    while i < b.len() {
        let n = match b[i] {
            0x20..=0x7e | b'\n' | b'\r' | b'\t' | 0x08 => 1,
            0xc3..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => break,
        };
        if n > 1 && (i + n > b.len() || !b[i + 1..i + n].iter().all(|c| (0x80..=0xbf).contains(c)))
        {
            break;
        }
        i += n;
    }
    i
}

/// The bytes after the introducer (ESC + the C0 controls a terminal executes
/// on the way + `[`/`]`/`P`; or a C1 byte; or C1 encoded as C2 xx).
fn after_introducer(p: &[u8]) -> &[u8] {
    match p {
        [ESC, rest @ ..] => {
            let c0 = rest
                .iter()
                .take_while(|b| **b < 0x20 || **b == 0x7f)
                .count();
            rest.get(c0 + 1..).unwrap_or(&[])
        }
        [0xc2, _, rest @ ..] => rest,
        [_, rest @ ..] => rest,
        [] => p,
    }
}

/// Without the C0 controls and DEL a terminal executes or ignores inside a sequence.
fn visible(b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if b.iter().all(|b| *b >= 0x20 && *b != 0x7f) {
        std::borrow::Cow::Borrowed(b)
    } else {
        b.iter()
            .copied()
            .filter(|b| *b >= 0x20 && *b != 0x7f)
            .collect()
    }
}

/// The first numeric parameter (leading zeros allowed, empty = 0, as terminals read it).
fn first_number(params: &[u8]) -> Option<u32> {
    let first = params.split(|b| *b == b';' || *b == b':').next()?;
    if first.len() > 9 {
        return None;
    }
    if first.is_empty() {
        return Some(0);
    }
    std::str::from_utf8(first).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(allow: &[TermSeq], chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = TermFilter::new(allow);
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    fn filt(input: &[u8]) -> Vec<u8> {
        run(&[], &[input])
    }

    /// Every split of `input` into two reads, and one byte per read, gives `want`.
    fn check_splits(allow: &[TermSeq], input: &[u8], want: &[u8]) {
        assert_eq!(
            run(allow, &[input]),
            want,
            "whole: {:?}",
            String::from_utf8_lossy(input)
        );
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                run(allow, &[a, b]),
                want,
                "split at {i}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(allow, &bytes), want, "byte by byte");
    }

    /// What must pass unchanged: ordinary TUI output.
    const HARMLESS: &[&[u8]] = &[
        b"plain text\r\n",
        "caf\u{e9} \u{201d}quoted\u{201d} \u{2014} \u{27a4} \u{1f600}\n".as_bytes(),
        b"\x1b[31mred\x1b[0m \x1b[38;2;255;0;0mtrue\x1b[m",
        b"\x1b[H\x1b[2J\x1b[10;20H\x1b[?25l\x1b[?25h",
        b"\x1b[?1049h\x1b[?1049l",                // alternate screen
        b"\x1b[?2004h\x1b[?2004l",                // bracketed paste
        b"\x1b[?1000h\x1b[?1006h\x1b[?1002l",     // mouse
        b"\x1b]0;my title\x07\x1b]2;other\x1b\\", // title set (kept)
        b"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", // hyperlink
        b"\x1b]133;A\x07prompt$ \x1b]133;B\x07",  // shell integration
        b"\x1b]11;?\x07\x1b]4;1;?\x1b\\",         // colour queries: answers are colours
        b"\x1b[14t\x1b[18t\x1b[19t\x1b[22;0t\x1b[23;0t", // size reports, title stack
        b"\x1b[c\x1b[>c\x1b[5n\x1b[6n\x1b[?2026h", // DA, DSR, sync output
        b"\x1bP+q544e\x1b\\",                     // XTGETTCAP
        b"\x1b_Gf=100;AAAA\x1b\\",                // kitty graphics (APC)
        b"\x1b7\x1b8\x1b(B\x1b)0\x1b#8\x1bM\x1b=\x1b>",
        b"\x1b[1\n2m",                   // C0 inside CSI is executed
        b"\x9b31m\x9d0;t\x9c\xc2\x9b1m", // C1 forms of harmless sequences
    ];

    #[test]
    fn harmless_output_passes_byte_for_byte_at_every_split() {
        for h in HARMLESS {
            check_splits(&[], h, h);
        }
        let all: Vec<u8> = HARMLESS.concat();
        assert_eq!(filt(&all), all);
    }

    /// (input, output with default policy)
    const DANGEROUS: &[(&[u8], &[u8], TermSeq)] = &[
        (b"a\x1b]52;c;ZXZpbA==\x07b", b"ab", TermSeq::Osc52),
        (b"a\x1b]52;c;ZXZpbA==\x1b\\b", b"ab", TermSeq::Osc52),
        (b"a\x1b]52;c;?\x07b", b"ab", TermSeq::Osc52), // clipboard read
        (b"a\x1b]052;c;ZXZpbA==\x07b", b"ab", TermSeq::Osc52), // leading zero
        (b"a\x1b]52\x07b", b"ab", TermSeq::Osc52),
        (b"a\x9d52;c;ZXZpbA==\x9cb", b"ab", TermSeq::Osc52), // 8-bit C1
        (b"a\xc2\x9d52;c;ZXZpbA==\xc2\x9cb", b"ab", TermSeq::Osc52), // UTF-8 C1
        (b"a\x1b]52;c;ZXZp\x9cb", b"ab", TermSeq::Osc52),    // ESC-form start, C1 end
        (b"a\x1b]5522;type=write\x07b", b"ab", TermSeq::Osc52),
        (b"a\x1b]1337;Copy=:ZXZpbA==\x07b", b"ab", TermSeq::Osc52),
        (
            b"a\x1b]1337;File=name=eA==:ZXZpbA==\x07b",
            b"ab",
            TermSeq::FileTransfer,
        ),
        (
            b"a\x1b]1337;ReportVariable=dXNlcg==\x07b",
            b"ab",
            TermSeq::VariableReport,
        ),
        (b"a\x1b[21tb", b"ab", TermSeq::TitleReport),
        (b"a\x1b[20tb", b"ab", TermSeq::TitleReport),
        (b"a\x1b[021;0tb", b"ab", TermSeq::TitleReport),
        (b"a\x9b21tb", b"ab", TermSeq::TitleReport),
        (b"a\xc2\x9b21tb", b"ab", TermSeq::TitleReport),
        (b"a\x1b[2\n1tb", b"a\nb", TermSeq::TitleReport), // a C0 inside does not hide it (and is executed)
        (b"a\x1bP$qm\x1b\\b", b"ab", TermSeq::Decrqss),
        (b"a\x1bP$q\"p\x1b\\b", b"ab", TermSeq::Decrqss),
        (b"a\x901$qm\x9cb", b"ab", TermSeq::Decrqss),
        (b"a\x1bP1;1|17/6563686f\x1b\\b", b"ab", TermSeq::Decudk),
        (b"a\x05b", b"ab", TermSeq::Answerback),
        (
            b"a\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\b",
            b"a\x1b\\b",
            TermSeq::TmuxPassthrough,
        ),
    ];

    #[test]
    fn dangerous_sequences_are_dropped_at_every_split_in_every_form() {
        for (input, want, _) in DANGEROUS {
            check_splits(&[], input, want);
        }
    }

    #[test]
    fn passthrough_lets_exactly_the_named_sequence_through() {
        for (input, _, seq) in DANGEROUS {
            // The tmux example carries an OSC 52: allowing the wrapper alone
            // still filters what it carries (see below).
            let allow = match seq {
                TermSeq::TmuxPassthrough => vec![*seq, TermSeq::Osc52],
                _ => vec![*seq],
            };
            check_splits(&allow, input, input);
        }
        // Allowing one does not allow the others.
        assert_eq!(filt(b"\x1b]52;c;eA==\x07"), b"");
        assert_eq!(
            run(&[TermSeq::TitleReport], &[b"\x1b]52;c;eA==\x07\x1b[21t"]),
            b"\x1b[21t"
        );
    }

    #[test]
    fn a_sequence_hidden_inside_a_string_is_still_seen() {
        // ESC inside a title aborts it: the OSC 52 after it is a sequence of
        // its own. The title already passed is cancelled with CAN so the
        // terminal leaves the string too.
        assert_eq!(
            filt(b"\x1b]0;title\x1b]52;c;eA==\x07after"),
            b"\x1b]0;title\x18after"
        );
        // A C1 OSC inside a DCS (screen passes DCS through raw).
        assert_eq!(filt(b"\x1bPq#0\x9d52;c;eA==\x07z"), b"\x1bPq#0\x18z");
        // tmux passthrough carrying OSC 52, when tmux passthrough is allowed.
        let out = run(
            &[TermSeq::TmuxPassthrough],
            &[b"\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\z"],
        );
        assert_eq!(out, b"\x1bPtmux;\x1b\\z");
        // Without the allowance the wrapper is dropped; what it carried is
        // parsed as the terminal would then see it: a harmless title passes.
        assert_eq!(
            filt(b"\x1bPtmux;\x1b\x1b]0;x\x07\x1b\\z"),
            b"\x1b]0;x\x07\x1b\\z"
        );
        // A title report inside an APC string aborts it and is dropped.
        assert_eq!(filt(b"\x1b_x\x1b[21tz"), b"\x1b_x\x18z");
    }

    #[test]
    fn oversize_sequences_are_dropped_without_buffering() {
        // A 2.5 MiB OSC 52: dropped, and the filter holds only its prefix.
        let mut f = TermFilter::new(&[]);
        let mut out = Vec::new();
        f.feed(b"x\x1b]52;c;", &mut out);
        let chunk = vec![b'A'; 65536];
        for _ in 0..40 {
            f.feed(&chunk, &mut out);
            assert!(f.pending.capacity() <= 2 * MAX_PREFIX, "pending grew");
        }
        f.feed(b"\x07y", &mut out);
        f.finish(&mut out);
        // The first 64 KiB are skipped; after that the filter is back in
        // ground, as the terminal is (it never saw the start): no clipboard write.
        assert!(out.starts_with(b"x"));
        assert!(!out.windows(3).any(|w| w == b"]52"));
        // A CSI with an absurd parameter list is dropped whole.
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 5000));
        long.extend(b"tok");
        assert_eq!(filt(&long), b"ok");
        // An OSC whose number never ends is dropped.
        let mut num = b"\x1b]".to_vec();
        num.extend(std::iter::repeat_n(b'5', 50));
        num.extend(b";x\x07ok");
        assert_eq!(filt(&num), b"ok");
        // A passed string streams through however long it is.
        let mut title = b"\x1b]0;".to_vec();
        title.extend(std::iter::repeat_n(b't', 200_000));
        title.push(BEL);
        assert_eq!(filt(&title), title);
    }

    #[test]
    fn an_unterminated_prefix_at_the_end_is_dropped() {
        assert_eq!(filt(b"ok\x1b]5"), b"ok");
        assert_eq!(filt(b"ok\x1b[2"), b"ok");
        assert_eq!(filt(b"ok\xc2"), b"ok\xc2");
        // An unterminated passed title stays as written.
        assert_eq!(filt(b"\x1b]0;t"), b"\x1b]0;t");
    }

    #[test]
    fn cancel_and_substitute_end_sequences() {
        assert_eq!(filt(b"\x1b[2\x18m"), b"\x18m");
        assert_eq!(filt(b"\x1b]52;c;eA\x18ok"), b"ok");
        assert_eq!(filt(b"\x1b]0;t\x1aok"), b"\x1b]0;t\x1aok");
    }

    /// Random streams built from the bytes that matter: the output never
    /// holds anything the filter would drop (nothing is assembled from the
    /// pieces around a dropped sequence), and splitting the input anywhere
    /// changes nothing.
    #[test]
    fn random_streams_never_yield_a_droppable_sequence() {
        const ALPHABET: &[u8] = &[
            ESC, ESC, ESC, b'[', b']', b'P', b'_', b'5', b'2', b'0', b'1', b';', b't', b'q', b'$',
            b'|', b'\\', BEL, CAN, ENQ, b'\n', b'a', b'm', b'u', b'x', b'c', 0x9b, 0x9d, 0x90,
            0x9c, 0xc2, 0xe2, 0x80,
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let out = run(&[], &[&input]);
            // (An incomplete sequence at the very end is the terminal's to ignore.)
            let mut again = TermFilter::new(&[]);
            let mut o2 = Vec::new();
            again.feed(&out, &mut o2);
            assert_eq!(
                again.dropped, 0,
                "output of {input:?} is {out:?}, which still holds a droppable sequence"
            );
            let cut = (next() as usize) % (input.len() + 1);
            let (x, y) = input.split_at(cut);
            assert_eq!(run(&[], &[x, y]), out, "split at {cut} of {input:?}");
        }
    }
}
