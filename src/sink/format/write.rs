//! Writing JSON straight into a buffer: what the OCSF and ECS encoders use instead
//! of building a value tree.

/// A JSON object written straight into a buffer, for the encoders (no value tree, no
/// per-key allocation). Closed when dropped.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes `"k":` and returns the buffer for the value.
    pub fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// `"k":"v"` (escaped).
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let out = self.key(k);
        let _ = serde_json::to_writer(&mut *out, v);
        self
    }

    /// `"k":"v"` when `v` is there.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(k, v);
        }
        self
    }

    /// `"k":n`.
    pub fn num(&mut self, k: &str, n: i64) -> &mut Self {
        let out = self.key(k);
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self
    }

    /// `"k":<raw JSON>`.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k).extend_from_slice(json.as_bytes());
        self
    }

    /// `"k":{…}`: the nested object, closed when it is dropped.
    pub fn obj(&mut self, k: &str) -> Obj<'_> {
        Obj::new(self.key(k))
    }

    /// `"k":[…]`: the nested array, closed when it is dropped.
    pub fn arr(&mut self, k: &str) -> Arr<'_> {
        Arr::new(self.key(k))
    }

    /// `"k":["a","b"]`.
    pub fn strs<S: AsRef<str>>(&mut self, k: &str, items: &[S]) -> &mut Self {
        let mut a = self.arr(k);
        for s in items {
            a.str(s.as_ref());
        }
        drop(a);
        self
    }
}

impl Drop for Obj<'_> {
    fn drop(&mut self) {
        self.out.push(b'}');
    }
}

/// A JSON array written straight into a buffer. Closed when dropped.
pub struct Arr<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Arr<'a> {
    /// Opens an array.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'[');
        Arr { out, first: true }
    }

    fn next(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }

    /// A string item.
    pub fn str(&mut self, v: &str) -> &mut Self {
        let out = self.next();
        let _ = serde_json::to_writer(&mut *out, v);
        self
    }

    /// An object item, closed when dropped.
    pub fn obj(&mut self) -> Obj<'_> {
        Obj::new(self.next())
    }
}

impl Drop for Arr<'_> {
    fn drop(&mut self) {
        self.out.push(b']');
    }
}
