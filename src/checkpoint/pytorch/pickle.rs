//! A restricted unpickler: runs the pickle virtual machine (protocols 0-5) over untrusted bytes and
//! builds plain data, never importing or calling anything.
//!
//! Containers live in an arena ([`Pickle::objects`]) and values refer to them by index, so shared
//! and even cyclic references (which pickles may contain) cost nothing and drop without recursion.
//! Globals go through the allow-list in [`super::globals`]; a name not on it stops the run with
//! [`PickleError::Refused`]. "Calls" (REDUCE, NEWOBJ, OBJ, INST) on allowed globals either build
//! the container they stand for (`OrderedDict()` -> dict) or are recorded as [`Object::Call`] for
//! the tensor layer to interpret.
//!
//! Resource limits: the machine is iterative (no recursion), every length read from the stream is
//! checked against the bytes left before anything is allocated, and what the machine keeps (arena
//! objects, container items, strings, memo entries, the stack's high-water mark) and the work not
//! proportional to the stream (element copies, hashed dict keys) draw on the budgets of
//! [`super::budget`], which grow linearly with the stream's length. Protocol-0 integers are capped
//! at CPython's 4,300 digits and converted nine digits at a time.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use super::budget::{self, Meter};
use super::globals::Global;
use crate::text::shown;

/// Index of an object in [`Pickle::objects`].
pub type ObjId = usize;

/// A value on the pickle stack: immutable scalars inline, containers by arena index.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as little-endian two's-complement bytes (LONG1/LONG4).
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Obj(ObjId),
}

/// A mutable or structured object in the arena.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Dict),
    Set(Vec<Value>),
    /// An allowed global, as a marker (never the Python object itself).
    Global(Global),
    /// A recorded call of an allowed global: `func(*args)`, plus BUILD state if one was applied.
    Call {
        func: Global,
        args: Value,
        state: Option<Value>,
    },
    /// A persistent id (PERSID/BINPERSID): in torch files, the reference to a storage.
    PersistentId(Value),
}

/// An insertion-ordered dict. Keys that are scalars are deduplicated as Python would (a repeated
/// key replaces the value in place); container keys are kept as they come.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dict {
    pub entries: Vec<(Value, Value)>,
    index: HashMap<DictKey, usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum DictKey {
    None,
    Int(i64),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

impl Dict {
    fn insert(&mut self, key: Value, value: Value) {
        let hash_key = match &key {
            Value::None => Some(DictKey::None),
            // Python: True == 1 and 1.0 == 1 hash alike.
            Value::Bool(b) => Some(DictKey::Int(i64::from(*b))),
            Value::Int(i) => Some(DictKey::Int(*i)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(DictKey::Int(*f as i64)),
            Value::Float(f) => Some(DictKey::Float(f.to_bits())),
            Value::Str(s) => Some(DictKey::Str(s.clone())),
            Value::Bytes(b) => Some(DictKey::Bytes(b.clone())),
            Value::BigInt(_) | Value::Obj(_) => None,
        };
        match hash_key {
            Some(k) => match self.index.get(&k) {
                Some(&i) => self.entries[i].1 = value,
                None => {
                    self.index.insert(k, self.entries.len());
                    self.entries.push((key, value));
                }
            },
            None => self.entries.push((key, value)),
        }
    }

    /// The value of a string key.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        let i = *self.index.get(&DictKey::Str(Rc::from(key)))?;
        self.entries.get(i).map(|(_, v)| v)
    }
}

/// The result of unpickling: the arena and the root value.
#[derive(Debug)]
pub struct Pickle {
    pub objects: Vec<Object>,
    pub root: Value,
    /// Bytes of the stream this pickle was read from: what later walks over it may cost scales
    /// with it (see [`super::budget`]).
    pub stream_len: usize,
}

impl Pickle {
    /// The object a value refers to, if it is a container.
    pub fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Obj(id) => self.objects.get(*id),
            _ => None,
        }
    }

    pub fn tuple(&self, value: &Value) -> Option<&[Value]> {
        match self.object(value)? {
            Object::Tuple(items) | Object::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn dict(&self, value: &Value) -> Option<&Dict> {
        match self.object(value)? {
            Object::Dict(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a pickle could not be read.
#[derive(Clone, Debug, PartialEq)]
pub enum PickleError {
    /// The pickle names a global that is not plain data (`os.system`, a model class...).
    Refused { global: String },
    /// The stream is not a valid pickle, or uses a feature we do not read.
    Malformed { offset: usize, message: String },
    /// The pickle asks for more memory or work than its length justifies ([`super::budget`]).
    OverBudget { offset: usize, what: &'static str, limit: String },
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Refused { global } => write!(
                f,
                "refusing to load: pickle references global '{}' (arbitrary code); only state dicts of tensors \
                 are supported",
                shown(global)
            ),
            PickleError::Malformed { offset, message } => write!(f, "malformed pickle at byte {offset}: {message}"),
            PickleError::OverBudget { offset, what, limit } => write!(
                f,
                "refusing to load: at byte {offset} ({what}) the pickle passes its limit of {limit}; no real \
                 checkpoint needs that much (a pickle bomb?)"
            ),
        }
    }
}

/// Longest text line (protocol 0 opcodes) we accept.
const MAX_LINE: usize = 64 * 1024;

/// Most digits of a protocol-0 integer (INT/LONG): CPython's own default limit
/// (`sys.get_int_max_str_digits()`), which no pickle Python writes exceeds.
const MAX_INT_DIGITS: usize = 4300;

/// Estimated bytes per dict entry: key and value plus the hash index slot.
const DICT_ENTRY_BYTES: usize = 2 * size_of::<Value>() + size_of::<DictKey>() + size_of::<usize>();
/// Estimated bytes per memo entry (key, value, hash table control byte and slack).
const MEMO_ENTRY_BYTES: usize = size_of::<u32>() + size_of::<Value>() + 8;
/// Bookkeeping of one shared string or bytes value (reference counts).
const STRING_OVERHEAD: usize = 16;

/// Unpickles one pickle from the start of `data`; returns it and the number of bytes it took
/// (the legacy torch format stores several pickles back to back).
pub fn unpickle(data: &[u8]) -> Result<(Pickle, usize), PickleError> {
    let mut machine = Machine::new(data, budget::memory_limit(data.len()), budget::work_limit(data.len()));
    let root = machine.run()?;
    Ok((Pickle { objects: machine.objects, root, stream_len: machine.pos }, machine.pos))
}

impl<'a> Machine<'a> {
    /// A machine at the start of `data` with the given memory and work allowances.
    fn new(data: &'a [u8], memory_limit: usize, work_limit: usize) -> Self {
        Machine {
            data,
            pos: 0,
            op_pos: 0,
            stack: Vec::new(),
            stack_high: 0,
            marks: Vec::new(),
            marks_high: 0,
            memo: HashMap::new(),
            objects: Vec::new(),
            memory: Meter::new(memory_limit),
            work: Meter::new(work_limit),
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current opcode started (for error messages).
    op_pos: usize,
    stack: Vec<Value>,
    /// The longest the stack has been (its memory is charged once per new high).
    stack_high: usize,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    marks_high: usize,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
    /// Estimated bytes still allowed for everything the machine keeps.
    memory: Meter,
    /// Element copies (dict(pairs), set(items), call arguments) and hashed key bytes left: keeps
    /// memo-amplified work linear.
    work: Meter,
}

type Res<T> = Result<T, PickleError>;

impl<'a> Machine<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Res<T> {
        Err(PickleError::Malformed { offset: self.op_pos, message: message.into() })
    }

    /// Charges `bytes` of estimated memory for `what` (named in the error when it does not fit).
    fn spend(&mut self, bytes: usize, what: &'static str) -> Res<()> {
        if self.memory.spend(bytes) {
            return Ok(());
        }
        let limit = format!("{} of memory", budget::describe_memory(self.data.len()));
        Err(PickleError::OverBudget { offset: self.op_pos, what, limit })
    }

    /// Charges `units` of work (element copies, hashed key bytes).
    fn spend_work(&mut self, units: usize) -> Res<()> {
        if self.work.spend(units) {
            return Ok(());
        }
        let limit = format!(
            "{} element copies and hashed key bytes ({} per pickle byte + {} Mi)",
            crate::text::thousands(budget::work_limit(self.data.len()) as u64),
            budget::WORK_PER_BYTE,
            budget::WORK_FLOOR >> 20
        );
        Err(PickleError::OverBudget { offset: self.op_pos, what: "copies and key hashing", limit })
    }

    /// Charges a string or bytes value of `len` bytes.
    fn spend_string(&mut self, len: usize) -> Res<()> {
        self.spend(len.saturating_add(STRING_OVERHEAD), "strings and bytes")
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            self.op_pos = self.pos;
            let Some(&op) = self.data.get(self.pos) else {
                return self.err("stream ends before the STOP opcode (truncated)");
            };
            self.pos += 1;
            if op == b'.' {
                return self.pop();
            }
            self.step(op)?;
        }
    }

    fn step(&mut self, op: u8) -> Res<()> {
        match op {
            // --- framing and protocol ---
            0x80 => {
                let version = self.u8()?;
                if version > 5 {
                    return self.err(format!("unsupported pickle protocol {version}"));
                }
            }
            0x95 => {
                // FRAME: advisory length of the next frame; only check it is plausible.
                let len = self.u64()?;
                if len > (self.data.len() - self.pos) as u64 {
                    return self.err(format!("frame of {len} bytes runs past the end of the stream"));
                }
            }
            // --- stack manipulation ---
            b'(' => {
                if self.marks.len() == self.marks_high {
                    self.spend(size_of::<usize>(), "MARKs")?;
                    self.marks_high += 1;
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?.clone();
                self.push(top)?;
            }
            // --- scalars ---
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(i64::from(v)))?;
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Value::Int(i64::from(v)))?;
            }
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Value::Int(i64::from(v)))?;
            }
            0x8a => {
                let n = usize::from(self.u8()?);
                let bytes = self.take(n)?;
                self.push(long_from_le(bytes))?;
            }
            0x8b => {
                let n = self.len_i32()?;
                let bytes = self.take(n)?;
                self.push(long_from_le(bytes))?;
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.push(Value::Float(v))?;
            }
            b'I' => {
                let line = self.line()?;
                let value = match line {
                    b"00" => Value::Bool(false),
                    b"01" => Value::Bool(true),
                    _ => self.parse_int(line)?,
                };
                self.push(value)?;
            }
            b'L' => {
                let line = self.line()?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let value = self.parse_int(digits)?;
                self.push(value)?;
            }
            b'F' => {
                let line = self.line()?;
                let Some(v) = std::str::from_utf8(line).ok().and_then(|s| s.trim().parse::<f64>().ok()) else {
                    return self.err("FLOAT is not a number");
                };
                self.push(Value::Float(v))?;
            }
            // --- strings and bytes ---
            b'X' => {
                let n = self.len_u32()?;
                self.push_utf8(n)?;
            }
            0x8c => {
                let n = usize::from(self.u8()?);
                self.push_utf8(n)?;
            }
            0x8d => {
                let n = self.len_u64()?;
                self.push_utf8(n)?;
            }
            b'V' => {
                let line = self.line()?;
                let Some(text) = decode_raw_unicode_escape(line) else {
                    return self.err("UNICODE has an invalid escape");
                };
                self.spend_string(text.len())?;
                self.push(Value::Str(text.into()))?;
            }
            b'S' => {
                let line = self.line()?;
                let Some(bytes) = decode_quoted_string(line) else {
                    return self.err("STRING is not a quoted string");
                };
                self.spend_string(bytes.len() * 2)?;
                self.push(Value::Str(latin1(&bytes).into()))?;
            }
            b'T' => {
                let n = self.len_i32()?;
                let bytes = self.take(n)?;
                self.spend_string(n * 2)?;
                self.push(Value::Str(latin1(bytes).into()))?;
            }
            b'U' => {
                let n = usize::from(self.u8()?);
                let bytes = self.take(n)?;
                self.spend_string(n * 2)?;
                self.push(Value::Str(latin1(bytes).into()))?;
            }
            b'B' => {
                let n = self.len_u32()?;
                let bytes = self.take(n)?;
                self.spend_string(n)?;
                self.push(Value::Bytes(bytes.into()))?;
            }
            b'C' => {
                let n = usize::from(self.u8()?);
                let bytes = self.take(n)?;
                self.spend_string(n)?;
                self.push(Value::Bytes(bytes.into()))?;
            }
            0x8e | 0x96 => {
                let n = self.len_u64()?;
                let bytes = self.take(n)?;
                self.spend_string(n)?;
                self.push(Value::Bytes(bytes.into()))?;
            }
            0x97 => return self.err("out-of-band buffers (NEXT_BUFFER) are not supported"),
            0x98 => {
                self.top()?;
            }
            // --- tuples, lists, dicts, sets ---
            b')' => self.push_obj(Object::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push_obj(Object::Tuple(items))?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let floor = self.marks.last().copied().unwrap_or(0);
                if self.stack.len().saturating_sub(floor) < n {
                    return self.err("stack underflow");
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push_obj(Object::Tuple(items))?;
            }
            b']' => self.push_obj(Object::List(Vec::new()))?,
            b'l' => {
                let items = self.pop_mark()?;
                self.push_obj(Object::List(items))?;
            }
            b'a' => {
                let item = self.pop()?;
                self.extend_list(vec![item])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            b'}' => self.push_obj(Object::Dict(Dict::default()))?,
            b'd' => {
                let items = self.pop_mark()?;
                let mut dict = Dict::default();
                // Its memory is charged when the dict enters the arena.
                self.spend_work(items.iter().step_by(2).map(key_len).sum())?;
                fill_dict(&mut dict, items, self.op_pos)?;
                self.push_obj(Object::Dict(dict))?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            0x8f => self.push_obj(Object::Set(Vec::new()))?,
            0x90 => {
                let items = self.pop_mark()?;
                self.spend(items.len() * size_of::<Value>(), "container items")?;
                match self.top_object_mut()? {
                    Some(Object::Set(set)) => set.extend(items),
                    _ => return self.err("ADDITEMS on something that is not a set"),
                }
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push_obj(Object::Set(items))?;
            }
            // --- globals and calls ---
            b'c' => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                self.push_global(&module, &name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return self.err("STACK_GLOBAL needs two strings");
                };
                self.push_global(&module, &name)?;
            }
            0x82..=0x84 => return self.err("extension-registry globals (EXT1/2/4) are not supported"),
            b'R' => {
                let args = self.pop()?;
                let func = self.pop()?;
                let result = self.call(func, args)?;
                self.push(result)?;
            }
            0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                let result = self.call(class, args)?;
                self.push(result)?;
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let result = self.call(class, args)?;
                self.push(result)?;
            }
            b'i' => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                let args = self.pop_mark()?;
                let Some(global) = Global::resolve(&module, &name) else {
                    return Err(PickleError::Refused { global: format!("{module}.{name}") });
                };
                let class = self.alloc(Object::Global(global))?;
                let args = self.alloc(Object::Tuple(args))?;
                let result = self.call(class, args)?;
                self.push(result)?;
            }
            b'o' => {
                let mut items = self.pop_mark()?.into_iter();
                let Some(class) = items.next() else {
                    return self.err("OBJ without a class");
                };
                let args = self.alloc(Object::Tuple(items.collect()))?;
                let result = self.call(class, args)?;
                self.push(result)?;
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?.clone();
                // Setting the state of a recorded call keeps it as data; BUILD on a dict
                // (OrderedDict attributes such as `_metadata`) is irrelevant to tensors.
                if let Value::Obj(id) = target
                    && let Some(Object::Call { state: slot, .. }) = self.objects.get_mut(id)
                {
                    *slot = Some(state);
                }
            }
            b'P' => {
                let id = self.line_str()?;
                self.spend_string(id.len())?;
                self.push_obj(Object::PersistentId(Value::Str(id.into())))?;
            }
            b'Q' => {
                let id = self.pop()?;
                self.push_obj(Object::PersistentId(id))?;
            }
            // --- memo ---
            b'p' => {
                let index = self.line_index()?;
                self.memo_put(index)?;
            }
            b'q' => {
                let index = u32::from(self.u8()?);
                self.memo_put(index)?;
            }
            b'r' => {
                let index = u32::from_le_bytes(self.array()?);
                self.memo_put(index)?;
            }
            0x94 => {
                let Ok(index) = u32::try_from(self.memo.len()) else {
                    return self.err("memo is full");
                };
                self.memo_put(index)?;
            }
            b'g' => {
                let index = self.line_index()?;
                self.memo_get(index)?;
            }
            b'h' => {
                let index = u32::from(self.u8()?);
                self.memo_get(index)?;
            }
            b'j' => {
                let index = u32::from_le_bytes(self.array()?);
                self.memo_get(index)?;
            }
            other => return self.err(format!("unknown opcode 0x{other:02x}")),
        }
        Ok(())
    }

    // --- reading the stream ---

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left {
            return self.err(format!("needs {n} bytes but only {left} are left (truncated)"));
        }
        let data = self.data;
        let bytes = &data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len_u32(&mut self) -> Res<usize> {
        let n = u32::from_le_bytes(self.array()?);
        usize::try_from(n).or_else(|_| self.err("length does not fit in memory"))
    }

    fn len_i32(&mut self) -> Res<usize> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).or_else(|_| self.err(format!("negative length {n}")))
    }

    fn len_u64(&mut self) -> Res<usize> {
        let n = self.u64()?;
        usize::try_from(n).or_else(|_| self.err(format!("length {n} does not fit in memory")))
    }

    /// A protocol-0 text argument: bytes up to (not including) the next newline.
    fn line(&mut self) -> Res<&'a [u8]> {
        let data = self.data;
        let rest = &data[self.pos..];
        let Some(len) = rest.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
            return self.err("text argument without a newline (truncated or too long)");
        };
        self.pos += len + 1;
        Ok(&rest[..len])
    }

    fn line_str(&mut self) -> Res<String> {
        let line = self.line()?;
        match std::str::from_utf8(line) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err("text argument is not UTF-8"),
        }
    }

    fn line_index(&mut self) -> Res<u32> {
        let line = self.line()?;
        match std::str::from_utf8(line).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
            Some(i) => Ok(i),
            None => self.err("memo index is not a number"),
        }
    }

    fn parse_int(&mut self, text: &[u8]) -> Res<Value> {
        let Some(text) = std::str::from_utf8(text).ok().map(str::trim) else {
            return self.err("integer is not ASCII");
        };
        if let Ok(v) = text.parse::<i64>() {
            return Ok(Value::Int(v));
        }
        let digits = text.trim_start_matches(['-', '+']).len();
        if digits > MAX_INT_DIGITS {
            return self.err(format!("integer of {digits} digits is longer than the {MAX_INT_DIGITS} Python allows"));
        }
        match decimal_to_le(text) {
            Some(bytes) => {
                self.spend_string(bytes.len())?;
                Ok(Value::BigInt(bytes.into()))
            }
            None => self.err(format!("'{}' is not an integer", shown(text))),
        }
    }

    fn push_utf8(&mut self, n: usize) -> Res<()> {
        let bytes = self.take(n)?;
        self.spend_string(n.saturating_mul(3))?;
        // Python writes lone surrogates with 'surrogatepass'; a lossy decode keeps such names usable.
        let text = String::from_utf8_lossy(bytes).into_owned();
        self.push(Value::Str(text.into()))?;
        Ok(())
    }

    // --- the stack ---

    fn pop(&mut self) -> Res<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> Res<&Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => Ok(v),
            _ => self.err("stack underflow"),
        }
    }

    /// The container on top of the stack (`None` when the top is a scalar).
    fn top_object_mut(&mut self) -> Res<Option<&mut Object>> {
        match *self.top()? {
            Value::Obj(id) => Ok(self.objects.get_mut(id)),
            _ => Ok(None),
        }
    }

    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return self.err("no MARK on the stack");
        };
        if mark > self.stack.len() {
            return self.err("stack underflow below MARK");
        }
        Ok(self.stack.split_off(mark))
    }

    /// Pushes onto the stack, charging its memory whenever the stack reaches a new length.
    fn push(&mut self, value: Value) -> Res<()> {
        if self.stack.len() == self.stack_high {
            self.spend(size_of::<Value>(), "stack entries")?;
            self.stack_high += 1;
        }
        self.stack.push(value);
        Ok(())
    }

    /// Adds an object to the arena, charging it and the items it holds.
    fn alloc(&mut self, object: Object) -> Res<Value> {
        let items = match &object {
            Object::List(items) | Object::Tuple(items) | Object::Set(items) => items.len() * size_of::<Value>(),
            Object::Dict(dict) => dict.entries.len() * DICT_ENTRY_BYTES,
            _ => 0,
        };
        self.spend(size_of::<Object>(), "objects")?;
        self.spend(items, "container items")?;
        self.objects.push(object);
        Ok(Value::Obj(self.objects.len() - 1))
    }

    fn push_obj(&mut self, object: Object) -> Res<()> {
        let value = self.alloc(object)?;
        self.push(value)
    }

    fn push_global(&mut self, module: &str, name: &str) -> Res<()> {
        match Global::resolve(module, name) {
            Some(global) => {
                self.push_obj(Object::Global(global))?;
                Ok(())
            }
            None => Err(PickleError::Refused { global: format!("{module}.{name}") }),
        }
    }

    // --- containers ---

    fn extend_list(&mut self, items: Vec<Value>) -> Res<()> {
        self.spend(items.len() * size_of::<Value>(), "container items")?;
        match self.top_object_mut()? {
            Some(Object::List(list)) => {
                list.extend(items);
                Ok(())
            }
            _ => self.err("APPEND on something that is not a list"),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Res<()> {
        self.charge_dict_items(&items)?;
        let op_pos = self.op_pos;
        match self.top_object_mut()? {
            Some(Object::Dict(dict)) => fill_dict(dict, items, op_pos),
            _ => self.err("SETITEM on something that is not a dict"),
        }
    }

    /// Charges alternating key/value `items` about to enter a dict: their memory, and hashing
    /// (and comparing) each key's bytes, which a memoized megabyte key would otherwise repeat freely.
    fn charge_dict_items(&mut self, items: &[Value]) -> Res<()> {
        self.spend(items.len() / 2 * DICT_ENTRY_BYTES, "dict entries")?;
        let key_bytes: usize = items.iter().step_by(2).map(key_len).sum();
        self.spend_work(key_bytes)
    }

    // --- calls ---

    /// Applies an allowed global to arguments without running anything: container constructors
    /// build the container, everything else is recorded as an [`Object::Call`].
    fn call(&mut self, func: Value, args: Value) -> Res<Value> {
        let global = match self.object(&func) {
            Some(Object::Global(global)) => global.clone(),
            _ => return self.err("call of something that is not an allowed global"),
        };
        let arg_count = match self.object(&args) {
            Some(Object::Tuple(items)) => items.len(),
            _ => return self.err("call arguments are not a tuple"),
        };
        self.spend_work(arg_count)?;
        let arg_items = match self.object(&args) {
            Some(Object::Tuple(items)) => items.clone(),
            _ => Vec::new(),
        };
        match global {
            Global::Dict => {
                let mut dict = Dict::default();
                if let Some(source) = arg_items.first() {
                    let pairs = self.iterable_pairs(source)?;
                    self.spend_work(pairs.iter().map(|(k, _)| key_len(k)).sum())?;
                    for (k, v) in pairs {
                        dict.insert(k, v);
                    }
                }
                self.alloc(Object::Dict(dict))
            }
            Global::Set => {
                let items = match arg_items.first() {
                    Some(source) => self.iterable_items(source)?,
                    None => Vec::new(),
                };
                self.alloc(Object::Set(items))
            }
            Global::Size => match arg_items.first() {
                Some(shape) => Ok(shape.clone()),
                None => self.alloc(Object::Tuple(Vec::new())),
            },
            Global::Encode => match arg_items.as_slice() {
                [Value::Str(text), Value::Str(encoding)] if matches!(&**encoding, "latin1" | "latin-1") => {
                    self.spend_string(text.len())?;
                    match text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<Vec<u8>>>() {
                        Some(bytes) => Ok(Value::Bytes(bytes.into())),
                        None => self.err("_codecs.encode: text is not latin-1"),
                    }
                }
                [Value::Str(text), ..] => {
                    self.spend_string(text.len())?;
                    Ok(Value::Bytes(text.as_bytes().into()))
                }
                _ => self.err("_codecs.encode needs a string"),
            },
            Global::ByteArray => match arg_items.first() {
                Some(Value::Bytes(b)) => Ok(Value::Bytes(b.clone())),
                None => Ok(Value::Bytes(Rc::from(Vec::new()))),
                Some(_) => self.alloc(Object::Call { func: Global::ByteArray, args, state: None }),
            },
            func => self.alloc(Object::Call { func, args, state: None }),
        }
    }

    fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Obj(id) => self.objects.get(*id),
            _ => None,
        }
    }

    /// The items of a list, tuple, set or dict (its keys); the copy is charged before it is made.
    fn iterable_items(&mut self, source: &Value) -> Res<Vec<Value>> {
        let len = match self.object(source) {
            Some(Object::List(items) | Object::Tuple(items) | Object::Set(items)) => items.len(),
            Some(Object::Dict(d)) => d.entries.len(),
            _ => return self.err("expected an iterable argument"),
        };
        self.spend_work(len)?;
        Ok(match self.object(source) {
            Some(Object::List(items) | Object::Tuple(items) | Object::Set(items)) => items.clone(),
            Some(Object::Dict(d)) => d.entries.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        })
    }

    fn iterable_pairs(&mut self, source: &Value) -> Res<Vec<(Value, Value)>> {
        if let Some(Object::Dict(d)) = self.object(source) {
            let len = d.entries.len();
            self.spend_work(len)?;
            return Ok(match self.object(source) {
                Some(Object::Dict(d)) => d.entries.clone(),
                _ => Vec::new(),
            });
        }
        let items = self.iterable_items(source)?;
        let mut pairs = Vec::with_capacity(items.len());
        for item in &items {
            match self.object(item) {
                Some(Object::Tuple(kv) | Object::List(kv)) if kv.len() == 2 => {
                    pairs.push((kv[0].clone(), kv[1].clone()))
                }
                _ => return self.err("dict() argument is not a sequence of pairs"),
            }
        }
        Ok(pairs)
    }

    // --- memo ---

    fn memo_put(&mut self, index: u32) -> Res<()> {
        let top = self.top()?.clone();
        self.spend(MEMO_ENTRY_BYTES, "memo entries")?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Res<()> {
        match self.memo.get(&index) {
            Some(v) => {
                let v = v.clone();
                self.push(v)?;
                Ok(())
            }
            None => self.err(format!("memo has no entry {index}")),
        }
    }
}

/// Bytes hashed (and compared) when `key` enters a dict.
fn key_len(key: &Value) -> usize {
    match key {
        Value::Str(s) => s.len(),
        Value::Bytes(b) | Value::BigInt(b) => b.len(),
        _ => 1,
    }
}

/// Adds alternating key/value `items` (SETITEMS, DICT) to `dict`.
fn fill_dict(dict: &mut Dict, items: Vec<Value>, op_pos: usize) -> Res<()> {
    if !items.len().is_multiple_of(2) {
        let message = "dict items come in key/value pairs but the count is odd".to_string();
        return Err(PickleError::Malformed { offset: op_pos, message });
    }
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        dict.insert(key, value);
    }
    Ok(())
}

/// LONG1/LONG4 payload: little-endian two's complement, any width.
fn long_from_le(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let fill = if bytes[bytes.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
        let mut buf = [fill; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(bytes.into())
}

/// A decimal integer (optionally signed) as little-endian two's-complement bytes. Works nine
/// digits at a time on 32-bit limbs: quadratic in the digit count, which the caller caps.
fn decimal_to_le(text: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut limbs: Vec<u32> = Vec::new();
    for chunk in digits.as_bytes().chunks(9) {
        let scale = 10u64.pow(chunk.len() as u32);
        let mut carry = chunk.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        for limb in &mut limbs {
            let v = u64::from(*limb) * scale + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut magnitude: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    magnitude.push(0); // room for the sign bit
    if negative {
        let mut carry = 1u16;
        for byte in &mut magnitude {
            let v = u16::from(!*byte) + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    Some(magnitude)
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Protocol 0 STRING argument: a Python repr in single or double quotes.
fn decode_quoted_string(line: &[u8]) -> Option<Vec<u8>> {
    let quote = *line.first()?;
    if !(quote == b'\'' || quote == b'"') || line.len() < 2 || line[line.len() - 1] != quote {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escape = *body.get(i)?;
        i += 1;
        out.push(match escape {
            b'\\' => b'\\',
            b'\'' => b'\'',
            b'"' => b'"',
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'0' => 0,
            b'x' => {
                let hex = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                i += 2;
                u8::from_str_radix(hex, 16).ok()?
            }
            _ => return None,
        });
    }
    Some(out)
}

/// Protocol 0 UNICODE argument: latin-1 with `\uXXXX` / `\UXXXXXXXX` escapes.
fn decode_raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        let width = match (b, line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        if width == 0 {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let hex = std::str::from_utf8(line.get(i + 2..i + 2 + width)?).ok()?;
        out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
        i += 2 + width;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Pickle, PickleError> {
        unpickle(bytes).map(|(p, _)| p)
    }

    fn malformed(bytes: &[u8]) -> String {
        match run(bytes) {
            Err(PickleError::Malformed { message, .. }) => message,
            other => panic!("expected a malformed-pickle error, got {other:?}"),
        }
    }

    fn text(p: &Pickle, v: &Value) -> String {
        match v {
            Value::Str(s) => s.to_string(),
            other => panic!("expected a string, got {other:?} in {:?}", p.objects),
        }
    }

    #[test]
    fn scalars_of_every_width() {
        // (K 7, M 0x1234, J -2, LONG1 -1, LONG1 2^64 (9 bytes), G 1.5, NONE, TRUE, FALSE) as a tuple
        let mut bytes = b"\x80\x02(K\x07M\x34\x12J\xfe\xff\xff\xff\x8a\x01\xff\x8a\x09".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        bytes.push(b'G');
        bytes.extend_from_slice(&1.5f64.to_be_bytes());
        bytes.extend_from_slice(b"N\x88\x89t.");
        let p = run(&bytes).unwrap();
        let items = p.tuple(&p.root).unwrap();
        assert_eq!(items[0], Value::Int(7));
        assert_eq!(items[1], Value::Int(0x1234));
        assert_eq!(items[2], Value::Int(-2));
        assert_eq!(items[3], Value::Int(-1));
        assert_eq!(items[4], Value::BigInt(Rc::from(&[0u8, 0, 0, 0, 0, 0, 0, 0, 1][..])));
        assert_eq!(items[5], Value::Float(1.5));
        assert_eq!(&items[6..], &[Value::None, Value::Bool(true), Value::Bool(false)]);
    }

    #[test]
    fn protocol_0_text_opcodes() {
        let bytes = b"(I42\nI01\nL-12345678901234567890L\nF0.25\nS'a\\'b'\nVx\\u00e9\np0\ng0\nt.";
        let p = run(bytes).unwrap();
        let items = p.tuple(&p.root).unwrap();
        assert_eq!(items[0], Value::Int(42));
        assert_eq!(items[1], Value::Bool(true));
        // -12345678901234567890 = -(0xab54a98ceb1f0ad2) in 9 bytes of two's complement
        let big = (-12345678901234567890i128).to_le_bytes();
        assert_eq!(items[2], Value::BigInt(Rc::from(&big[..9])));
        assert_eq!(items[3], Value::Float(0.25));
        assert_eq!(text(&p, &items[4]), "a'b");
        assert_eq!(text(&p, &items[5]), "x\u{e9}");
        assert_eq!(items[6], items[5], "PUT/GET round trip");
    }

    #[test]
    fn strings_and_bytes_of_every_width() {
        let mut bytes = b"\x80\x04(X\x02\x00\x00\x00ab\x8c\x01c\x8d\x01\x00\x00\x00\x00\x00\x00\x00d".to_vec();
        bytes.extend_from_slice(b"C\x02\x01\x02B\x01\x00\x00\x00\x03\x8e\x01\x00\x00\x00\x00\x00\x00\x00\x04");
        bytes.extend_from_slice(b"T\x02\x00\x00\x00efU\x01g");
        bytes.extend_from_slice(b"t.");
        let p = run(&bytes).unwrap();
        let items = p.tuple(&p.root).unwrap();
        let strings: Vec<String> = [0, 1, 2, 6, 7].iter().map(|&i| text(&p, &items[i])).collect();
        assert_eq!(strings, ["ab", "c", "d", "ef", "g"]);
        assert_eq!(items[3], Value::Bytes(Rc::from(&[1u8, 2][..])));
        assert_eq!(items[4], Value::Bytes(Rc::from(&[3u8][..])));
        assert_eq!(items[5], Value::Bytes(Rc::from(&[4u8][..])));
    }

    #[test]
    fn containers_and_memo_share_objects() {
        // d = {}; memo[0] = d; l = [d, 1]; d['k'] = 2 after; result (l, d)
        let bytes = b"\x80\x02}q\x00]q\x01(h\x00K\x01eh\x00X\x01\x00\x00\x00kK\x02sh\x01h\x00\x86.";
        let p = run(bytes).unwrap();
        let root = p.tuple(&p.root).unwrap();
        let list = p.tuple(&root[0]).unwrap();
        assert_eq!(list[0], root[1], "the list holds the same dict object");
        let dict = p.dict(&root[1]).unwrap();
        assert_eq!(dict.get_str("k"), Some(&Value::Int(2)));
    }

    #[test]
    fn dict_keeps_insertion_order_and_replaces_duplicates() {
        let bytes = b"\x80\x02}(X\x01\x00\x00\x00bK\x01X\x01\x00\x00\x00aK\x02X\x01\x00\x00\x00bK\x03u.";
        let p = run(bytes).unwrap();
        let d = p.dict(&p.root).unwrap();
        let keys: Vec<String> = d.entries.iter().map(|(k, _)| text(&p, k)).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(d.get_str("b"), Some(&Value::Int(3)));
    }

    #[test]
    fn protocol_4_framing_memoize_and_stack_global() {
        // FRAME, STACK_GLOBAL collections.OrderedDict, MEMOIZE, EMPTY_TUPLE, REDUCE, SETITEM, sets.
        let mut body = Vec::new();
        body.extend_from_slice(b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94");
        body.extend_from_slice(b"\x8c\x01x\x94\x8f(K\x01K\x02\x90s\x8c\x01y\x94(K\x03\x91s.");
        let mut bytes = b"\x80\x04\x95".to_vec();
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        let p = run(&bytes).unwrap();
        let d = p.dict(&p.root).unwrap();
        assert_eq!(p.object(d.get_str("x").unwrap()), Some(&Object::Set(vec![Value::Int(1), Value::Int(2)])));
        assert_eq!(p.object(d.get_str("y").unwrap()), Some(&Object::Set(vec![Value::Int(3)])));
    }

    #[test]
    fn protocol_2_bytes_via_codecs_encode() {
        let bytes = b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86R.";
        let p = run(bytes).unwrap();
        assert_eq!(p.root, Value::Bytes(Rc::from(&[0xffu8][..])));
    }

    #[test]
    fn torch_calls_are_recorded_not_made() {
        let bytes = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(X\x01\x00\x00\x00aK\x00tR}b.";
        let p = run(bytes).unwrap();
        match p.object(&p.root) {
            Some(Object::Call { func: Global::Rebuild(_), state: Some(_), .. }) => {}
            other => panic!("expected a recorded call, got {other:?}"),
        }
    }

    #[test]
    fn persistent_ids() {
        let p = run(b"\x80\x02(X\x01\x00\x00\x00kK\x01tQ.").unwrap();
        let Some(Object::PersistentId(id)) = p.object(&p.root) else { panic!("{:?}", p.root) };
        assert_eq!(p.tuple(id).map(<[Value]>::len), Some(2));
        let p = run(b"Pabc\n.").unwrap();
        assert!(matches!(p.object(&p.root), Some(Object::PersistentId(Value::Str(s))) if &**s == "abc"));
    }

    #[test]
    fn code_globals_are_refused_by_every_opcode() {
        let cases: [&[u8]; 5] = [
            b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.",
            b"\x80\x04\x8c\x05posix\x8c\x06system\x93.",
            b"\x80\x02c__builtin__\neval\n.",
            b"(X\x01\x00\x00\x00xisubprocess\nPopen\n.",
            b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93.",
        ];
        let names = ["os.system", "posix.system", "__builtin__.eval", "subprocess.Popen", "builtins.exec"];
        for (bytes, name) in cases.iter().zip(names) {
            assert_eq!(run(bytes).unwrap_err(), PickleError::Refused { global: name.to_string() });
            assert!(run(bytes).unwrap_err().to_string().contains(name));
        }
    }

    #[test]
    fn calls_of_non_globals_are_rejected() {
        assert!(malformed(b"\x80\x02X\x01\x00\x00\x00f)R.").contains("not an allowed global"));
        assert!(malformed(b"\x80\x02ccollections\nOrderedDict\nK\x01R.").contains("not a tuple"));
    }

    #[test]
    fn stack_underflow_and_marks() {
        assert!(malformed(b".").contains("underflow"));
        assert!(malformed(b"\x80\x02s.").contains("underflow"));
        assert!(malformed(b"\x80\x02K\x01(\x86.").contains("underflow"), "TUPLE2 may not reach below a MARK");
        assert!(malformed(b"\x80\x02K\x01(a.").contains("underflow"));
        assert!(malformed(b"\x80\x02t.").contains("MARK"));
        assert!(malformed(b"\x80\x02K\x01K\x02a.").contains("not a list"));
        assert!(malformed(b"\x80\x02}(K\x01u.").contains("odd"));
    }

    #[test]
    fn memo_misuse() {
        assert!(malformed(b"\x80\x02h\x05.").contains("no entry 5"));
        assert!(malformed(b"\x80\x02q\x00.").contains("underflow"));
        assert!(malformed(b"\x80\x02j\xff\xff\xff\xff.").contains("no entry"));
    }

    #[test]
    fn truncation_and_bad_lengths() {
        assert!(malformed(b"\x80\x02").contains("truncated"));
        assert!(malformed(b"\x80\x02X\xff\xff\xff\x7fab").contains("truncated"));
        assert!(malformed(b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff").contains("bytes"));
        assert!(malformed(b"\x80\x02T\xff\xff\xff\xff").contains("negative"));
        assert!(malformed(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x01.").contains("frame"));
        assert!(malformed(b"cos").contains("newline"));
    }

    #[test]
    fn unknown_opcodes_and_protocols() {
        assert!(malformed(b"\x80\x02\xff.").contains("unknown opcode 0xff"));
        assert!(malformed(b"\x80\x06.").contains("protocol 6"));
        assert!(malformed(b"\x80\x02\x82\x01.").contains("extension"));
        assert!(malformed(b"\x80\x05\x97.").contains("out-of-band"));
    }

    #[test]
    fn deep_nesting_is_iterative() {
        // 200k nested lists: no recursion in the machine, and dropping the arena is flat.
        let mut bytes = b"\x80\x02".to_vec();
        bytes.extend(std::iter::repeat_n(b"]".as_slice(), 200_000).flatten());
        bytes.extend(std::iter::repeat_n(b"a".as_slice(), 199_999).flatten());
        bytes.push(b'.');
        let p = run(&bytes).unwrap();
        assert_eq!(p.objects.len(), 200_000);
    }

    #[test]
    fn memo_amplified_copies_hit_the_budget() {
        // A 100k-item list copied into a set a million times would be 10^11 copies.
        let mut bytes = b"\x80\x02]q\x00(".to_vec();
        bytes.extend(std::iter::repeat_n(b"K\x01".as_slice(), 100_000).flatten());
        bytes.extend_from_slice(b"e0");
        for _ in 0..1_000_000 {
            bytes.extend_from_slice(b"cbuiltins\nset\nh\x00\x85R0");
        }
        bytes.extend_from_slice(b"N.");
        assert!(matches!(run(&bytes), Err(PickleError::OverBudget { .. })));
    }

    fn over_budget(bytes: &[u8]) -> &'static str {
        match run(bytes) {
            Err(PickleError::OverBudget { what, .. }) => what,
            other => panic!("expected an over-budget error, got {other:?}"),
        }
    }

    #[test]
    fn empty_lists_beyond_the_memory_budget_are_refused() {
        // Each `]` (one byte) costs an arena object and a stack slot, over 64 bytes.
        let mut bytes = b"\x80\x02".to_vec();
        bytes.resize(4_000_000, b']');
        bytes.push(b'.');
        assert!(matches!(over_budget(&bytes), "objects" | "stack entries"));
        let message = run(&bytes).unwrap_err().to_string();
        assert!(message.contains("64 per byte of this 4,000,001-byte pickle + 64 MiB"), "{message}");
    }

    #[test]
    fn repeated_hashing_of_a_memoized_key_is_work() {
        // One 1 MB key set into a dict 100 times: 100 MB of key bytes hashed from a 1 MB pickle.
        let mut bytes = b"\x80\x02}".to_vec();
        bytes.push(b'X');
        bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
        bytes.resize(bytes.len() + (1 << 20), b'k');
        bytes.extend_from_slice(b"q\x000");
        for _ in 0..100 {
            bytes.extend_from_slice(b"h\x00Ns");
        }
        bytes.push(b'.');
        assert_eq!(over_budget(&bytes), "copies and key hashing");
    }

    /// The memory estimate of running `bytes` with no limit.
    fn estimate(bytes: &[u8]) -> usize {
        let mut machine = Machine::new(bytes, usize::MAX, usize::MAX);
        machine.run().unwrap();
        usize::MAX - machine.memory.left()
    }

    #[test]
    fn real_torch_pickles_stay_far_below_the_budget() {
        // Every pickle torch wrote for the fixtures (memoized protocol 2 and 4): the estimate per
        // pickle byte must stay under half the allowance of budget.rs.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(file) = std::fs::read(&path) else { continue };
            let Ok(mut archive) = ::zip::ZipArchive::new(std::io::Cursor::new(file)) else { continue };
            let Some(name) = archive.file_names().find(|n| n.ends_with("data.pkl")).map(str::to_string) else {
                continue;
            };
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_name(&name).unwrap(), &mut bytes).unwrap();
            if run(&bytes).is_err() {
                continue; // the malicious fixtures
            }
            let per_byte = estimate(&bytes) as f64 / bytes.len() as f64;
            assert!(per_byte < budget::MEMORY_PER_BYTE as f64 / 2.0, "{}: {per_byte:.1} per byte", path.display());
            checked += 1;
        }
        assert!(checked >= 8, "{checked} fixtures");
    }

    #[test]
    fn text_integers_are_capped_and_converted_exactly() {
        let mut long = b"I".to_vec();
        long.extend(std::iter::repeat_n(b'9', MAX_INT_DIGITS + 1));
        long.extend_from_slice(b"\n.");
        assert!(malformed(&long).contains("4300"));
        // Against i128 for values past i64, both signs, every chunk length.
        let mut state = 0x1234_5678_9abc_def1u64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = (i128::from(state as i64) << (state % 60)) * if state.is_multiple_of(3) { -1 } else { 1 };
            let bytes = decimal_to_le(&value.to_string()).unwrap();
            let width = bytes.len();
            let mut full = [if value < 0 { 0xff } else { 0 }; 16];
            full[..width.min(16)].copy_from_slice(&bytes[..width.min(16)]);
            assert_eq!(i128::from_le_bytes(full), value, "{value}");
        }
        // 10^4299 (4,300 digits) has the right bit length: 14,282 bits.
        let mut digits = "1".to_string();
        digits.push_str(&"0".repeat(4299));
        let bytes = decimal_to_le(&digits).unwrap();
        let top = bytes.iter().rposition(|&b| b != 0).unwrap();
        assert_eq!(top * 8 + (8 - bytes[top].leading_zeros() as usize), 14_281);
    }

    #[test]
    fn reports_where_a_pickle_ends() {
        let (_, used) = unpickle(b"\x80\x02K\x01.\x80\x02K\x02.").unwrap();
        assert_eq!(used, 5);
    }

    #[test]
    fn mutated_pickles_never_panic() {
        let valid = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02ctorch._utils\n\
            _rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06\
            X\x03\x00\x00\x00cpuq\x07K\x06tq\x08QK\x00K\x03K\x02\x86K\x02K\x01\x86\x89h\x00)Rtq\tRq\nu}b.";
        assert!(run(valid).is_ok());
        // xorshift: deterministic pseudo-random single-byte and truncation mutations.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = valid.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            let cut = (next() as usize) % (bytes.len() + 1);
            let _ = run(&bytes);
            let _ = run(&bytes[..cut]);
        }
    }
}
