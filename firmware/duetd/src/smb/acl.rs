//! NT security descriptors, stored and enforced (MS-DTYP 2.4.6, 2.5.3; MS-FSA 2.1.5.1,
//! 2.1.5.16): what CREATE grants, what a new object inherits, and QUERY_INFO / SET_INFO of
//! InfoType SECURITY.
//!
//! Owns: the access check, inheritance and the merge of a SET_INFO into the stored
//! descriptor. The descriptor itself lives in the object's `user.duet.sd` xattr
//! (`duet_hal::fs`), the encoding in `duet_fscc`.
//!
//! Rules:
//! - An object without a stored descriptor behaves as before descriptors were stored: it
//!   reports a synthesized one (owner: the asking user; DACL: that user and Everyone, full
//!   access, inheritable on directories) and grants everyone full access.
//! - Access at CREATE is the MS-DTYP 2.5.3.2 walk of the DACL for the user's token (user SID,
//!   Everyone, Authenticated Users, BUILTIN\Users): ACCESS_ALLOWED/ACCESS_DENIED ACEs in
//!   order, inherit-only ones skipped, the first ACE to decide a bit wins. The owner always
//!   has READ_CONTROL | WRITE_DAC unless the DACL names OWNER RIGHTS (S-1-3-4), whose ACEs
//!   then apply to the owner instead. A NULL DACL grants everything, an empty one nothing
//!   but the owner's rights. The parent directory adds DELETE when it grants
//!   FILE_DELETE_CHILD and FILE_READ_ATTRIBUTES when it grants FILE_LIST_DIRECTORY.
//!   Overwriting needs FILE_WRITE_DATA. Creating needs FILE_ADD_FILE (files) or
//!   FILE_ADD_SUBDIRECTORY (directories) on the parent; the creator of a new object gets
//!   what it asked for.
//! - A new object gets the descriptor of the SecD create context, or inherits from its
//!   parent (MS-DTYP 2.5.3.4): nothing is stored when the parent has no stored descriptor
//!   and no SecD was given (the synthesized one is what it would inherit).
//! - Callback and object ACEs are kept as given; a deny of that kind whose SID matches
//!   counts as a deny (its condition cannot be evaluated here), an allow does not grant.
//! - The owner can be set (SecD, SET_INFO) only to a SID of the user's token
//!   (STATUS_INVALID_OWNER otherwise). Nobody holds SeSecurityPrivilege: SACLs cannot be
//!   read or set (STATUS_PRIVILEGE_NOT_HELD).
//! - A stored descriptor that cannot be parsed grants nothing to anyone (fail closed) and
//!   reads back as an empty DACL without owner: an administrator removes the xattr.

use std::cell::OnceCell;

use duet_fscc::consts::*;
use duet_fscc::{
    Ace, Acl, SecurityDescriptor, Sid, SE_DACL_AUTO_INHERIT_REQ, SE_SACL_AUTO_INHERIT_REQ,
};
use duet_hal::fs::{FsError, Handle, ShareRoot};

use super::create::{
    fs_status, FILE_DELETE_ON_CLOSE, FILE_OPEN, FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE,
};
use super::{Conn, Fail};
use crate::wire::status;

/// STATUS_INVALID_OWNER: the owner SID cannot be assigned by this user.
pub const INVALID_OWNER: u32 = 0xC000_005A;
/// STATUS_INVALID_PRIMARY_GROUP: a group was to be set and none was given.
pub const INVALID_PRIMARY_GROUP: u32 = 0xC000_005B;
/// STATUS_INVALID_SECURITY_DESCR: a descriptor that does not parse.
pub const INVALID_SECURITY_DESCR: u32 = 0xC000_0079;

/// The rights a DACL can grant on a file or directory.
const VALID_RIGHTS: u32 = FILE_ALL_ACCESS;
/// The security information parts this server handles.
const KNOWN_PARTS: u32 = OWNER_SECURITY_INFORMATION
    | GROUP_SECURITY_INFORMATION
    | DACL_SECURITY_INFORMATION
    | SACL_SECURITY_INFORMATION;
/// Deny ACE types: ACCESS_DENIED, its object, callback and callback-object forms.
const DENY_TYPES: [u8; 4] = [ACCESS_DENIED_ACE_TYPE, 0x06, 0x0A, 0x0C];
const INHERIT_FLAGS: u8 =
    OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE | NO_PROPAGATE_INHERIT_ACE | INHERIT_ONLY_ACE;

fn well_known(authority: u64, subs: &[u32]) -> Sid {
    Sid::new(authority, subs).unwrap_or_else(|_| Sid::everyone())
}

/// CREATOR OWNER, S-1-3-0: replaced by the owner when inherited.
pub fn creator_owner() -> Sid {
    well_known(3, &[0])
}
/// CREATOR GROUP, S-1-3-1: replaced by the group when inherited.
pub fn creator_group() -> Sid {
    well_known(3, &[1])
}
/// OWNER RIGHTS, S-1-3-4: ACEs for the owner that replace its implicit rights.
pub fn owner_rights() -> Sid {
    well_known(3, &[4])
}
/// NT AUTHORITY\Authenticated Users, S-1-5-11.
pub fn authenticated_users() -> Sid {
    well_known(5, &[11])
}
/// NT AUTHORITY\SYSTEM, S-1-5-18.
pub fn local_system() -> Sid {
    well_known(5, &[18])
}
/// BUILTIN\Users, S-1-5-32-545: every user's primary group here.
pub fn builtin_users() -> Sid {
    well_known(5, &[32, 545])
}

/// Who is asking: the user's SID and the groups every logged-on user has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub user: Sid,
    pub groups: Vec<Sid>,
}

impl Token {
    /// The token of a user with SID `user`.
    pub fn new(user: Sid) -> Token {
        Token {
            user,
            groups: vec![Sid::everyone(), authenticated_users(), builtin_users()],
        }
    }

    /// The token of the session `session_id` (its user mapped by `info::user_sid`).
    pub fn of_session(conn: &Conn, session_id: u64) -> Token {
        let user = conn
            .sessions
            .get(&session_id)
            .map(|s| s.user.as_str())
            .unwrap_or_default();
        Token::new(super::info::user_sid(&conn.server.cfg.netbios_name, user))
    }

    /// Whether `sid` is the user or one of its groups.
    pub fn contains(&self, sid: &Sid) -> bool {
        *sid == self.user || self.groups.contains(sid)
    }

    /// The group new objects get.
    pub fn primary_group(&self) -> Sid {
        builtin_users()
    }
}

/// GENERIC_* bits to the file rights they stand for (MS-DTYP 2.4.3; the directory mapping
/// has the same values). Other bits stay.
pub fn map_generic(mask: u32) -> u32 {
    let mut m = mask & !(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL);
    for (g, specific) in [
        (GENERIC_READ, FILE_GENERIC_READ),
        (GENERIC_WRITE, FILE_GENERIC_WRITE),
        (GENERIC_EXECUTE, FILE_GENERIC_EXECUTE),
        (GENERIC_ALL, FILE_ALL_ACCESS),
    ] {
        if mask & g != 0 {
            m |= specific;
        }
    }
    m
}

/// The rights `sd` grants `token` (MS-DTYP 2.5.3.2 with MAXIMUM_ALLOWED): the DACL walked
/// in order, the first ACE deciding a bit wins, plus the owner's implicit rights.
pub fn max_allowed(sd: &SecurityDescriptor, token: &Token) -> u32 {
    let Some(dacl) = sd.dacl() else {
        // No DACL (NULL, or none present): no policy, everything.
        return VALID_RIGHTS;
    };
    let is_owner = sd.owner.as_ref().is_some_and(|o| token.contains(o));
    let owner_rights = owner_rights();
    let named_owner_rights = dacl
        .aces
        .iter()
        .any(|a| !a.is_inherit_only() && a.sid == owner_rights);
    let mut granted = if is_owner && !named_owner_rights {
        READ_CONTROL | WRITE_DAC
    } else {
        0
    };
    let mut denied = 0u32;
    for ace in dacl.aces.iter().filter(|a| !a.is_inherit_only()) {
        let applies = token.contains(&ace.sid) || (is_owner && ace.sid == owner_rights);
        if !applies {
            continue;
        }
        let mask = map_generic(ace.mask) & VALID_RIGHTS;
        if ace.ace_type == ACCESS_ALLOWED_ACE_TYPE {
            granted |= mask & !denied;
        } else if DENY_TYPES.contains(&ace.ace_type) {
            denied |= mask & !granted;
        }
    }
    granted
}

/// What a directory granting `parent` adds on its entries: DELETE for FILE_DELETE_CHILD,
/// FILE_READ_ATTRIBUTES for FILE_LIST_DIRECTORY.
pub fn granted_by_parent(parent: u32) -> u32 {
    let mut g = 0;
    if parent & FILE_DELETE_CHILD != 0 {
        g |= DELETE;
    }
    if parent & FILE_LIST_DIRECTORY != 0 {
        g |= FILE_READ_ATTRIBUTES;
    }
    g
}

/// The descriptor an object without a stored one reports: owner the asking user, group
/// BUILTIN\Users, a DACL granting the user and Everyone full access (inheritable by files
/// and directories on a directory).
pub fn default_sd(token: &Token, is_dir: bool) -> SecurityDescriptor {
    let flags = if is_dir {
        OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE
    } else {
        0
    };
    let aces = [token.user.clone(), Sid::everyone()]
        .into_iter()
        .map(|s| Ace::new(ACCESS_ALLOWED_ACE_TYPE, flags, FILE_ALL_ACCESS, s))
        .collect();
    SecurityDescriptor {
        control: SE_SELF_RELATIVE | SE_DACL_PRESENT,
        owner: Some(token.user.clone()),
        group: Some(token.primary_group()),
        sacl: None,
        dacl: Some(Acl::new(aces)),
    }
}

/// What a new object gets when it inherits nothing: full access for its owner and SYSTEM
/// (the DACL of a Windows logon token).
fn owner_default_dacl(owner: &Sid) -> Acl {
    Acl::new(vec![
        Ace::new(ACCESS_ALLOWED_ACE_TYPE, 0, FILE_ALL_ACCESS, owner.clone()),
        Ace::new(ACCESS_ALLOWED_ACE_TYPE, 0, FILE_ALL_ACCESS, local_system()),
    ])
}

/// A stored descriptor that does not parse: grants nothing, owned by nobody.
fn unusable_sd() -> SecurityDescriptor {
    SecurityDescriptor {
        control: SE_SELF_RELATIVE | SE_DACL_PRESENT,
        dacl: Some(Acl::new(Vec::new())),
        ..Default::default()
    }
}

fn decode_stored(raw: &[u8]) -> SecurityDescriptor {
    SecurityDescriptor::from_bytes(raw).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "stored security descriptor does not parse; access denied to all");
        unusable_sd()
    })
}

/// The stored descriptor of an open object, if it has one.
pub fn load(handle: &Handle) -> Result<Option<SecurityDescriptor>, Fail> {
    let raw = handle
        .security_descriptor()
        .map_err(|e| Fail::Status(fs_status(&e)))?;
    Ok(raw.map(|r| decode_stored(&r)))
}

/// Maps the generic bits of the ACEs that apply to the object itself (inherit-only ones
/// keep theirs for their heirs), as Windows stores a DACL it is given.
fn map_acl_generic(acl: &mut Acl) {
    for ace in acl.aces.iter_mut().filter(|a| !a.is_inherit_only()) {
        ace.mask = map_generic(ace.mask);
    }
}

/// DACL control bits as stored from a descriptor a client gives: PROTECTED kept,
/// AUTO_INHERITED kept only with AUTO_INHERIT_REQ (itself never stored).
fn given_dacl_control(given: u16) -> u16 {
    let mut c = SE_DACL_PRESENT | (given & SE_DACL_PROTECTED);
    if given & (SE_DACL_AUTO_INHERITED | SE_DACL_AUTO_INHERIT_REQ)
        == SE_DACL_AUTO_INHERITED | SE_DACL_AUTO_INHERIT_REQ
    {
        c |= SE_DACL_AUTO_INHERITED;
    }
    c
}

/// The DACL a given descriptor carries (NULL when DACL_PRESENT is not set or no ACL
/// follows), generic bits mapped.
fn given_dacl(given: &SecurityDescriptor) -> Option<Acl> {
    let mut dacl = given.dacl()?.clone();
    map_acl_generic(&mut dacl);
    Some(dacl)
}

/// The ACEs a new object inherits from its parent's DACL (MS-DTYP 2.5.3.4.2): on a file
/// those with OBJECT_INHERIT; on a directory those with CONTAINER_INHERIT (effective, and
/// inheritable further unless NO_PROPAGATE) and those with only OBJECT_INHERIT (inherit-only,
/// for its files, unless NO_PROPAGATE). CREATOR OWNER / CREATOR GROUP become `owner` /
/// `group` and generic bits are mapped in the effective copy; an ACE that needs either and
/// still propagates is split in an effective ACE and an inherit-only one. INHERITED_ACE is
/// set when the parent's DACL is auto-inherited.
pub fn inherited_aces(
    parent: &SecurityDescriptor,
    is_dir: bool,
    owner: &Sid,
    group: &Sid,
) -> Vec<Ace> {
    let Some(dacl) = parent.dacl() else {
        return Vec::new();
    };
    let inherited = if parent.control & SE_DACL_AUTO_INHERITED != 0 {
        INHERITED_ACE
    } else {
        0
    };
    let (co, cg) = (creator_owner(), creator_group());
    let effective = |ace: &Ace| {
        let mut e = ace.clone();
        e.flags = (ace.flags & !(INHERIT_FLAGS | INHERITED_ACE)) | inherited;
        e.mask = map_generic(ace.mask);
        if ace.sid == co {
            e.sid = owner.clone();
        } else if ace.sid == cg {
            e.sid = group.clone();
        }
        e
    };
    let propagating = |ace: &Ace, flags: u8| {
        let mut p = ace.clone();
        p.flags = (ace.flags & !(INHERIT_FLAGS | INHERITED_ACE)) | flags | inherited;
        p
    };
    let mut out = Vec::new();
    for ace in &dacl.aces {
        let oi = ace.flags & OBJECT_INHERIT_ACE != 0;
        let ci = ace.flags & CONTAINER_INHERIT_ACE != 0;
        let np = ace.flags & NO_PROPAGATE_INHERIT_ACE != 0;
        if !is_dir {
            if oi {
                out.push(effective(ace));
            }
            continue;
        }
        if ci && np {
            out.push(effective(ace));
        } else if ci {
            let keep = ace.flags & (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE);
            let needs_split = ace.sid == co || ace.sid == cg || map_generic(ace.mask) != ace.mask;
            if needs_split {
                out.push(effective(ace));
                out.push(propagating(ace, keep | INHERIT_ONLY_ACE));
            } else {
                out.push(propagating(ace, keep));
            }
        } else if oi && !np {
            out.push(propagating(ace, OBJECT_INHERIT_ACE | INHERIT_ONLY_ACE));
        }
    }
    out
}

/// Checks what a SecD create context (or a SET_INFO) asks that this user may not do: an
/// owner outside the token, a SACL.
fn check_given(given: &SecurityDescriptor, token: &Token) -> Result<(), u32> {
    if given.control & SE_SACL_PRESENT != 0 && given.sacl.is_some() {
        return Err(status::PRIVILEGE_NOT_HELD);
    }
    match &given.owner {
        Some(o) if !token.contains(o) => Err(INVALID_OWNER),
        _ => Ok(()),
    }
}

/// The descriptor to store on a new object: from `given` (the SecD create context) what it
/// has, the rest inherited from `parent` (its effective descriptor, stored or synthesized),
/// or the owner-and-SYSTEM default when nothing is inheritable. `None` (store nothing) when
/// neither a SecD nor a stored parent descriptor is involved.
pub fn initial_sd(
    parent: &SecurityDescriptor,
    parent_stored: bool,
    given: Option<&SecurityDescriptor>,
    token: &Token,
    is_dir: bool,
) -> Result<Option<SecurityDescriptor>, u32> {
    if given.is_none() && !parent_stored {
        return Ok(None);
    }
    if let Some(g) = given {
        check_given(g, token)?;
    }
    let owner = given
        .and_then(|g| g.owner.clone())
        .unwrap_or_else(|| token.user.clone());
    let group = given
        .and_then(|g| g.group.clone())
        .unwrap_or_else(|| token.primary_group());
    let (control, dacl) = match given {
        Some(g) if g.control & SE_DACL_PRESENT != 0 => {
            (given_dacl_control(g.control), given_dacl(g))
        }
        _ => {
            let aces = inherited_aces(parent, is_dir, &owner, &group);
            if aces.is_empty() {
                (SE_DACL_PRESENT, Some(owner_default_dacl(&owner)))
            } else {
                let auto = parent.control & SE_DACL_AUTO_INHERITED;
                (SE_DACL_PRESENT | auto, Some(Acl::new(aces)))
            }
        }
    };
    Ok(Some(SecurityDescriptor {
        control: SE_SELF_RELATIVE | control,
        owner: Some(owner),
        group: Some(group),
        sacl: None,
        dacl,
    }))
}

/// Parses the SecD create context (MS-SMB2 2.2.13.2: a self-relative descriptor).
pub fn parse_sd_context(data: &[u8]) -> Result<SecurityDescriptor, Fail> {
    SecurityDescriptor::from_bytes(data).map_err(|_| Fail::Status(INVALID_SECURITY_DESCR))
}

/// SET_INFO of a descriptor: `current` with the parts `info` names taken from `new`
/// (MS-FSA 2.1.5.16). The access the open needs is checked by [`set_info`].
pub fn merge(
    current: &SecurityDescriptor,
    new: &SecurityDescriptor,
    info: u32,
    token: &Token,
) -> Result<SecurityDescriptor, u32> {
    let mut out = current.clone();
    out.control &= !(SE_DACL_AUTO_INHERIT_REQ | SE_SACL_AUTO_INHERIT_REQ);
    out.control |= SE_SELF_RELATIVE;
    if info & OWNER_SECURITY_INFORMATION != 0 {
        let owner = new.owner.clone().ok_or(INVALID_OWNER)?;
        if !token.contains(&owner) {
            return Err(INVALID_OWNER);
        }
        out.owner = Some(owner);
        out.control = (out.control & !SE_OWNER_DEFAULTED) | (new.control & SE_OWNER_DEFAULTED);
    }
    if info & GROUP_SECURITY_INFORMATION != 0 {
        out.group = Some(new.group.clone().ok_or(INVALID_PRIMARY_GROUP)?);
        out.control = (out.control & !SE_GROUP_DEFAULTED) | (new.control & SE_GROUP_DEFAULTED);
    }
    if info & DACL_SECURITY_INFORMATION != 0 {
        // No DACL in the input (not present, or present without an ACL) is a NULL DACL.
        out.dacl = given_dacl(new);
        let dacl_bits =
            SE_DACL_PRESENT | SE_DACL_DEFAULTED | SE_DACL_AUTO_INHERITED | SE_DACL_PROTECTED;
        out.control = (out.control & !dacl_bits) | given_dacl_control(new.control);
    }
    if info & SACL_SECURITY_INFORMATION != 0 {
        // Unreachable without SeSecurityPrivilege ([`set_info`] refuses first); kept
        // consistent should a privilege ever exist.
        out.sacl = if new.control & SE_SACL_PRESENT != 0 {
            new.sacl.clone()
        } else {
            None
        };
        let sacl_bits =
            SE_SACL_PRESENT | SE_SACL_DEFAULTED | SE_SACL_AUTO_INHERITED | SE_SACL_PROTECTED;
        out.control =
            (out.control & !sacl_bits) | SE_SACL_PRESENT | (new.control & SE_SACL_PROTECTED);
    }
    Ok(out)
}

/// The access SET_INFO of the parts `info` needs on the open: WRITE_OWNER for owner and
/// group, WRITE_DAC for the DACL, ACCESS_SYSTEM_SECURITY for the SACL
/// (STATUS_PRIVILEGE_NOT_HELD without it).
pub fn check_set_access(granted: u32, info: u32) -> Result<(), u32> {
    if info & SACL_SECURITY_INFORMATION != 0 && granted & ACCESS_SYSTEM_SECURITY == 0 {
        return Err(status::PRIVILEGE_NOT_HELD);
    }
    if info & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION) != 0
        && granted & WRITE_OWNER == 0
    {
        return Err(status::ACCESS_DENIED);
    }
    if info & DACL_SECURITY_INFORMATION != 0 && granted & WRITE_DAC == 0 {
        return Err(status::ACCESS_DENIED);
    }
    Ok(())
}

/// QUERY_INFO, InfoType SECURITY: the stored descriptor (or the synthesized one) with the
/// parts `info` asks for, self-relative. READ_CONTROL / ACCESS_SYSTEM_SECURITY are the
/// caller's to check.
pub fn query_info(
    handle: &Handle,
    is_dir: bool,
    token: &Token,
    info: u32,
) -> Result<Vec<u8>, Fail> {
    let sd = load(handle)?.unwrap_or_else(|| default_sd(token, is_dir));
    sd.select(info)
        .to_bytes()
        .map_err(|_| Fail::Status(status::INTERNAL_ERROR))
}

/// SET_INFO, InfoType SECURITY: checks the open's access for the parts `info` names, parses
/// `input` and stores the merged descriptor (under the file's metadata lock).
pub fn set_info(
    handle: &Handle,
    granted: u32,
    is_dir: bool,
    token: &Token,
    info: u32,
    input: &[u8],
) -> Result<(), Fail> {
    check_set_access(granted, info).map_err(Fail::Status)?;
    let new =
        SecurityDescriptor::from_bytes(input).map_err(|_| Fail::Status(INVALID_SECURITY_DESCR))?;
    if info & KNOWN_PARTS == 0 {
        return Ok(());
    }
    handle
        .update_security_descriptor(|raw| {
            let current = match raw {
                Some(r) => decode_stored(&r),
                None => default_sd(token, is_dir),
            };
            let merged = merge(&current, &new, info, token).map_err(SetError::Status)?;
            merged
                .to_bytes()
                .map_err(|_| SetError::Status(INVALID_SECURITY_DESCR))
        })
        .map_err(|e| match e {
            SetError::Status(st) => Fail::Status(st),
            SetError::Fs(FsError::Io(libc::EOPNOTSUPP)) => Fail::Status(status::NOT_SUPPORTED),
            SetError::Fs(fe) => Fail::Status(fs_status(&fe)),
        })
}

enum SetError {
    Status(u32),
    Fs(FsError),
}

impl From<FsError> for SetError {
    fn from(e: FsError) -> Self {
        SetError::Fs(e)
    }
}

/// The access decisions of one CREATE on a disk share: [`OpenCheck::before_open`] before
/// anything is opened or created, [`OpenCheck::after_open`] once the object is open (under
/// the name it has on disk).
pub struct OpenCheck<'a> {
    root: &'a ShareRoot,
    token: Token,
    req: OpenRequest,
    /// The parent's stored descriptor, read once.
    parent: OnceCell<Option<SecurityDescriptor>>,
}

/// What a CREATE asks, as the access decisions need it.
pub struct OpenRequest {
    /// DesiredAccess as the client sent it (generic bits, MAXIMUM_ALLOWED).
    pub desired: u32,
    pub disposition: u32,
    pub options: u32,
    /// What the tree allows at most (a read-only share: no write rights).
    pub tree_maximal: u32,
    /// The SecD create context, if any.
    pub sec_desc: Option<SecurityDescriptor>,
}

fn parent_of(path: &str) -> Option<&str> {
    if path.is_empty() {
        None
    } else {
        Some(path.rsplit_once('/').map_or("", |(p, _)| p))
    }
}

impl<'a> OpenCheck<'a> {
    pub fn new(token: Token, root: &'a ShareRoot, req: OpenRequest) -> Self {
        OpenCheck {
            root,
            token,
            req,
            parent: OnceCell::new(),
        }
    }

    /// The parent's stored descriptor.
    fn parent_stored(&self, path: &str) -> Result<Option<&SecurityDescriptor>, FsError> {
        if let Some(p) = self.parent.get() {
            return Ok(p.as_ref());
        }
        let stored = match parent_of(path) {
            Some(p) => self
                .root
                .dir_security_descriptor(p)?
                .map(|r| decode_stored(&r)),
            None => None,
        };
        Ok(self.parent.get_or_init(|| stored).as_ref())
    }

    /// The parent's effective descriptor (stored, else synthesized) and whether it is
    /// stored.
    fn parent_effective(&self, path: &str) -> Result<(SecurityDescriptor, bool), FsError> {
        Ok(match self.parent_stored(path)? {
            Some(sd) => (sd.clone(), true),
            None => (default_sd(&self.token, true), false),
        })
    }

    /// Before the open: a SecD create context that this user may not apply (an owner
    /// outside its token, a SACL), or that cannot be kept (no user xattrs), is refused
    /// before anything is created. Opens that never create ignore it.
    pub fn before_open(&self) -> Result<(), Fail> {
        let Some(g) = &self.req.sec_desc else {
            return Ok(());
        };
        if matches!(self.req.disposition, FILE_OPEN | FILE_OVERWRITE) {
            return Ok(());
        }
        if !self.root.xattrs_supported() {
            return Err(Fail::Status(status::NOT_SUPPORTED));
        }
        check_given(g, &self.token).map_err(Fail::Status)
    }

    /// Once open (`path` as on disk): for an existing object, the access check of its
    /// descriptor; for a new one, FILE_ADD_FILE / FILE_ADD_SUBDIRECTORY on the parent and
    /// its initial descriptor stored. A new object is removed again when either fails.
    /// Returns (GrantedAccess, the maximal access MxAc reports).
    pub fn after_open(
        &self,
        handle: &Handle,
        path: &str,
        created: bool,
    ) -> Result<(u32, u32), Fail> {
        let r = self.decide(handle, path, created);
        if r.is_err() && created {
            let removed = if handle.is_dir() {
                self.root.rmdir(path)
            } else {
                self.root.unlink(path)
            };
            if let Err(e) = removed {
                tracing::warn!(path, error = %e, "could not remove an object whose creation was refused");
            }
        }
        r
    }

    fn decide(&self, handle: &Handle, path: &str, created: bool) -> Result<(u32, u32), Fail> {
        let is_dir = handle.is_dir();
        let wants_max = self.req.desired & MAXIMUM_ALLOWED != 0;
        let desired = map_generic(self.req.desired & !MAXIMUM_ALLOWED);
        let fs = |e: FsError| Fail::Status(fs_status(&e));
        let own = if created {
            let (parent, stored) = self.parent_effective(path).map_err(fs)?;
            let need = if is_dir {
                FILE_ADD_SUBDIRECTORY
            } else {
                FILE_ADD_FILE
            };
            if stored && max_allowed(&parent, &self.token) & need == 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            let sd = initial_sd(
                &parent,
                stored,
                self.req.sec_desc.as_ref(),
                &self.token,
                is_dir,
            )
            .map_err(Fail::Status)?;
            if let Some(sd) = &sd {
                let bytes = sd
                    .to_bytes()
                    .map_err(|_| Fail::Status(INVALID_SECURITY_DESCR))?;
                handle
                    .set_security_descriptor(&bytes)
                    .map_err(|e| match e {
                        FsError::Io(libc::EOPNOTSUPP) => Fail::Status(status::NOT_SUPPORTED),
                        e => fs(e),
                    })?;
            }
            sd
        } else {
            load(handle)?
        };
        let maximal = match &own {
            None => VALID_RIGHTS,
            Some(sd) => {
                let mut m = max_allowed(sd, &self.token);
                let from_parent = DELETE | FILE_READ_ATTRIBUTES;
                if m & from_parent != from_parent && parent_of(path).is_some() {
                    let (parent, _) = self.parent_effective(path).map_err(fs)?;
                    m |= granted_by_parent(max_allowed(&parent, &self.token));
                }
                m
            }
        };
        let granted = if created {
            // The creator gets what it asked for.
            if wants_max {
                desired | (VALID_RIGHTS & self.req.tree_maximal)
            } else {
                desired
            }
        } else {
            let overwrite = matches!(
                self.req.disposition,
                FILE_SUPERSEDE | FILE_OVERWRITE | FILE_OVERWRITE_IF
            );
            let need = desired | if overwrite { FILE_WRITE_DATA } else { 0 };
            if need & !maximal != 0 {
                return Err(Fail::Status(status::ACCESS_DENIED));
            }
            if wants_max {
                desired | (maximal & self.req.tree_maximal)
            } else {
                desired
            }
        };
        if self.req.options & FILE_DELETE_ON_CLOSE != 0 && granted & DELETE == 0 {
            return Err(Fail::Status(status::ACCESS_DENIED));
        }
        Ok((granted, maximal & self.req.tree_maximal))
    }
}

/// For operations that add an entry to a directory other than CREATE (a rename's target
/// directory): the directory `dir` must grant FILE_ADD_FILE (FILE_ADD_SUBDIRECTORY for a
/// directory entry) to `token`. A directory without a stored descriptor grants it.
pub fn check_add_entry(
    root: &ShareRoot,
    token: &Token,
    dir: &str,
    entry_is_dir: bool,
) -> Result<(), Fail> {
    let Some(raw) = root
        .dir_security_descriptor(dir)
        .map_err(|e| Fail::Status(fs_status(&e)))?
    else {
        return Ok(());
    };
    let need = if entry_is_dir {
        FILE_ADD_SUBDIRECTORY
    } else {
        FILE_ADD_FILE
    };
    if max_allowed(&decode_stored(&raw), token) & need == 0 {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    Ok(())
}

/// For removing an entry other than through an open the client made (a rename that
/// replaces its target): `token` needs DELETE on the object at `path`, from its own
/// descriptor or through FILE_DELETE_CHILD on its directory.
pub fn check_delete_entry(root: &ShareRoot, token: &Token, path: &str) -> Result<(), Fail> {
    let fs = |e: FsError| Fail::Status(fs_status(&e));
    let opts = duet_hal::fs::OpenOptions {
        read: true,
        write: false,
        disposition: duet_hal::fs::Disposition::Open,
        kind: duet_hal::fs::Kind::Any,
        attributes_on_create: 0,
        mode: 0,
    };
    let (handle, _) = root.open_file(path, &opts).map_err(fs)?;
    let Some(own) = load(&handle)? else {
        return Ok(());
    };
    if max_allowed(&own, token) & DELETE != 0 {
        return Ok(());
    }
    let parent = match parent_of(path) {
        Some(p) => root
            .dir_security_descriptor(p)
            .map_err(fs)?
            .map(|r| decode_stored(&r)),
        None => return Err(Fail::Status(status::ACCESS_DENIED)),
    };
    let parent = parent.unwrap_or_else(|| default_sd(token, true));
    if granted_by_parent(max_allowed(&parent, token)) & DELETE != 0 {
        return Ok(());
    }
    Err(Fail::Status(status::ACCESS_DENIED))
}

#[cfg(test)]
mod tests {
    use super::super::create::FILE_CREATE;
    use super::*;
    use duet_hal::fs::{Disposition, Kind, OpenOptions};

    const FILE_READ_DATA_: u32 = FILE_READ_DATA;

    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }
    fn alice() -> Token {
        Token::new(sid("S-1-5-21-1-2-3-1001"))
    }
    fn bob() -> Token {
        Token::new(sid("S-1-5-21-1-2-3-1002"))
    }
    fn allow(flags: u8, mask: u32, who: &Sid) -> Ace {
        Ace::new(ACCESS_ALLOWED_ACE_TYPE, flags, mask, who.clone())
    }
    fn deny(flags: u8, mask: u32, who: &Sid) -> Ace {
        Ace::new(ACCESS_DENIED_ACE_TYPE, flags, mask, who.clone())
    }
    fn sd_with(owner: &Sid, aces: Vec<Ace>) -> SecurityDescriptor {
        SecurityDescriptor {
            control: SE_SELF_RELATIVE | SE_DACL_PRESENT,
            owner: Some(owner.clone()),
            group: Some(builtin_users()),
            sacl: None,
            dacl: Some(Acl::new(aces)),
        }
    }
    const FILE_READ: u32 = FILE_GENERIC_READ;
    const OWNER_IMPLICIT: u32 = READ_CONTROL | WRITE_DAC;

    #[test]
    fn generic_bits_map_to_file_rights() {
        assert_eq!(map_generic(GENERIC_READ), FILE_GENERIC_READ);
        assert_eq!(map_generic(GENERIC_WRITE), FILE_GENERIC_WRITE);
        assert_eq!(map_generic(GENERIC_EXECUTE), FILE_GENERIC_EXECUTE);
        assert_eq!(map_generic(GENERIC_ALL | DELETE), FILE_ALL_ACCESS);
        assert_eq!(
            map_generic(FILE_READ_DATA_ | MAXIMUM_ALLOWED),
            FILE_READ_DATA_ | MAXIMUM_ALLOWED
        );
        assert_eq!(map_generic(0), 0);
    }

    #[test]
    fn null_and_empty_dacls() {
        let a = alice();
        let mut sd = sd_with(&a.user, vec![]);
        assert_eq!(
            max_allowed(&sd, &a),
            OWNER_IMPLICIT,
            "empty: only the owner's rights"
        );
        assert_eq!(max_allowed(&sd, &bob()), 0, "empty: nothing for others");
        sd.dacl = None;
        assert_eq!(
            max_allowed(&sd, &bob()),
            FILE_ALL_ACCESS,
            "NULL DACL: everything"
        );
        sd.control &= !SE_DACL_PRESENT;
        assert_eq!(
            max_allowed(&sd, &bob()),
            FILE_ALL_ACCESS,
            "no DACL: everything"
        );
    }

    #[test]
    fn first_ace_to_decide_a_bit_wins() {
        let a = alice();
        // An allow before a deny of the same bit: granted (DENY1).
        let sd = sd_with(
            &a.user,
            vec![
                allow(0, FILE_READ | FILE_WRITE_DATA, &a.user),
                deny(0, FILE_WRITE_DATA, &a.user),
            ],
        );
        assert_eq!(
            max_allowed(&sd, &a),
            FILE_READ | FILE_WRITE_DATA | WRITE_DAC
        );
        // A deny first: the later allow does not give it back.
        let sd = sd_with(
            &a.user,
            vec![
                deny(0, FILE_WRITE_DATA, &Sid::everyone()),
                allow(0, FILE_ALL_ACCESS, &a.user),
            ],
        );
        assert_eq!(max_allowed(&sd, &a), FILE_ALL_ACCESS & !FILE_WRITE_DATA);
        // Deny cannot take the owner's implicit rights.
        let sd = sd_with(&a.user, vec![deny(0, FILE_ALL_ACCESS, &a.user)]);
        assert_eq!(max_allowed(&sd, &a), OWNER_IMPLICIT);
    }

    #[test]
    fn which_aces_apply() {
        let a = alice();
        let owner = sid("S-1-5-21-9-9-9-9");
        for (who, expect) in [
            (Sid::everyone(), FILE_READ_DATA_),
            (authenticated_users(), FILE_READ_DATA_),
            (builtin_users(), FILE_READ_DATA_),
            (a.user.clone(), FILE_READ_DATA_),
            (bob().user, 0),
            (creator_owner(), 0),
            (local_system(), 0),
        ] {
            let sd = sd_with(&owner, vec![allow(0, FILE_READ_DATA_, &who)]);
            assert_eq!(max_allowed(&sd, &a), expect, "{who}");
        }
        // Inherit-only ACEs do not apply to the object.
        let sd = sd_with(
            &owner,
            vec![allow(
                OBJECT_INHERIT_ACE | INHERIT_ONLY_ACE,
                FILE_ALL_ACCESS,
                &a.user,
            )],
        );
        assert_eq!(max_allowed(&sd, &a), 0);
        // OI/CI alone do not make an ACE inherit-only.
        let sd = sd_with(
            &owner,
            vec![allow(
                OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE,
                FILE_READ_DATA_,
                &a.user,
            )],
        );
        assert_eq!(max_allowed(&sd, &a), FILE_READ_DATA_);
        // Generic bits in an ACE count mapped; rights a DACL cannot give are not given.
        let sd = sd_with(
            &owner,
            vec![allow(
                0,
                GENERIC_READ | ACCESS_SYSTEM_SECURITY | MAXIMUM_ALLOWED,
                &a.user,
            )],
        );
        assert_eq!(max_allowed(&sd, &a), FILE_GENERIC_READ);
    }

    #[test]
    fn callback_and_object_aces() {
        let a = alice();
        let owner = sid("S-1-5-21-9-9-9-9");
        let mut cb_allow = allow(0, FILE_READ_DATA_, &a.user);
        cb_allow.ace_type = 0x09;
        let mut cb_deny = deny(0, FILE_READ_DATA_, &a.user);
        cb_deny.ace_type = 0x0A;
        let mut obj_deny = deny(0, FILE_READ_DATA_, &a.user);
        obj_deny.ace_type = 0x06;
        obj_deny.object = vec![0; 4];
        assert_eq!(
            max_allowed(&sd_with(&owner, vec![cb_allow]), &a),
            0,
            "a conditional allow grants nothing"
        );
        for d in [cb_deny, obj_deny] {
            let sd = sd_with(
                &owner,
                vec![d, allow(0, FILE_READ_DATA_ | FILE_WRITE_DATA, &a.user)],
            );
            assert_eq!(
                max_allowed(&sd, &a),
                FILE_WRITE_DATA,
                "a conditional deny denies"
            );
        }
    }

    #[test]
    fn owner_rights_replace_the_implicit_rights() {
        let a = alice();
        let or = owner_rights();
        // OWNER-RIGHTS: additive with the owner's own ACE, no implicit WRITE_DAC.
        let sd = sd_with(
            &a.user,
            vec![allow(0, FILE_READ, &a.user), allow(0, FILE_WRITE_DATA, &or)],
        );
        assert_eq!(max_allowed(&sd, &a), FILE_READ | FILE_WRITE_DATA);
        // OWNER-RIGHTS-DENY: a leading deny.
        let sd = sd_with(
            &a.user,
            vec![deny(0, FILE_READ_DATA_, &or), allow(0, FILE_READ, &a.user)],
        );
        assert_eq!(max_allowed(&sd, &a), FILE_READ & !FILE_READ_DATA_);
        // OWNER-RIGHTS-DENY1: a trailing deny changes nothing.
        let sd = sd_with(
            &a.user,
            vec![
                allow(0, FILE_READ, &a.user),
                allow(0, FILE_WRITE_DATA, &or),
                deny(0, FILE_WRITE_DATA | FILE_READ_DATA_, &or),
            ],
        );
        assert_eq!(max_allowed(&sd, &a), FILE_READ | FILE_WRITE_DATA);
        // OWNER RIGHTS ACEs are nothing to others, and an owner-rights ACE that is
        // inherit-only does not cancel the implicit rights.
        let sd = sd_with(&a.user, vec![allow(0, FILE_WRITE_DATA, &or)]);
        assert_eq!(max_allowed(&sd, &bob()), 0);
        let sd = sd_with(
            &a.user,
            vec![allow(
                INHERIT_ONLY_ACE | OBJECT_INHERIT_ACE,
                FILE_WRITE_DATA,
                &or,
            )],
        );
        assert_eq!(max_allowed(&sd, &a), OWNER_IMPLICIT);
        // An owner that is a group of the token is the owner too.
        let sd = sd_with(&Sid::everyone(), vec![]);
        assert_eq!(max_allowed(&sd, &bob()), OWNER_IMPLICIT);
    }

    #[test]
    fn parent_rights_on_entries() {
        assert_eq!(
            granted_by_parent(FILE_ALL_ACCESS),
            DELETE | FILE_READ_ATTRIBUTES
        );
        assert_eq!(granted_by_parent(FILE_DELETE_CHILD), DELETE);
        assert_eq!(granted_by_parent(FILE_LIST_DIRECTORY), FILE_READ_ATTRIBUTES);
        assert_eq!(
            granted_by_parent(DELETE | FILE_READ_ATTRIBUTES | FILE_WRITE_DATA),
            0
        );
    }

    #[test]
    fn the_synthesized_descriptor_is_the_old_one() {
        let a = alice();
        for is_dir in [false, true] {
            for info in 0..16 {
                let ours = default_sd(&a, is_dir).select(info).to_bytes().unwrap();
                let old =
                    duet_fscc::default_security_descriptor(&a.user, &builtin_users(), is_dir, info);
                assert_eq!(ours, old, "dir {is_dir} info {info}");
            }
            assert_eq!(
                max_allowed(&default_sd(&a, is_dir), &bob()),
                FILE_ALL_ACCESS
            );
        }
    }

    /// smb2.acls.INHERITANCE: a parent with [CREATOR OWNER: WRITE_DATA, `flags`] and
    /// [Everyone: full, no inheritance]; what a file and a directory below get.
    #[test]
    fn inheritance_flag_table() {
        let a = alice();
        let co = creator_owner();
        let (oi, ci, np, io) = (
            OBJECT_INHERIT_ACE,
            CONTAINER_INHERIT_ACE,
            NO_PROPAGATE_INHERIT_ACE,
            INHERIT_ONLY_ACE,
        );
        // (parent flags, file ACE flags or None, dir ACEs as (sid is CO, flags))
        type Case<'a> = (u8, Option<u8>, &'a [(bool, u8)]);
        let table: [Case<'_>; 16] = [
            (0, None, &[]),
            (oi, Some(0), &[(true, oi | io)]),
            (ci, None, &[(false, 0), (true, ci | io)]),
            (oi | ci, Some(0), &[(false, 0), (true, oi | ci | io)]),
            (np, None, &[]),
            (np | oi, Some(0), &[]),
            (np | ci, None, &[(false, 0)]),
            (np | ci | oi, Some(0), &[(false, 0)]),
            (io, None, &[]),
            (io | oi, Some(0), &[(true, oi | io)]),
            (io | ci, None, &[(false, 0), (true, ci | io)]),
            (io | ci | oi, Some(0), &[(false, 0), (true, ci | oi | io)]),
            (io | np, None, &[]),
            (io | np | oi, Some(0), &[]),
            (io | np | ci, None, &[(false, 0)]),
            (io | np | ci | oi, Some(0), &[(false, 0)]),
        ];
        for (pflags, file, dir) in table {
            let parent = sd_with(
                &a.user,
                vec![
                    allow(pflags, FILE_WRITE_DATA, &co),
                    allow(0, FILE_ALL_ACCESS, &Sid::everyone()),
                ],
            );
            let f = inherited_aces(&parent, false, &a.user, &builtin_users());
            match file {
                None => assert!(f.is_empty(), "file, parent {pflags:#x}: {f:?}"),
                Some(fl) => {
                    assert_eq!(f.len(), 1, "file, parent {pflags:#x}");
                    assert_eq!(
                        (f[0].flags, f[0].mask, &f[0].sid),
                        (fl, FILE_WRITE_DATA, &a.user)
                    );
                }
            }
            let d = inherited_aces(&parent, true, &a.user, &builtin_users());
            let got: Vec<(bool, u8)> = d.iter().map(|e| (e.sid == co, e.flags)).collect();
            assert_eq!(got, dir, "dir, parent {pflags:#x}");
            for e in &d {
                assert_eq!(e.mask, FILE_WRITE_DATA);
                assert!(e.sid == co || e.sid == a.user);
            }
        }
    }

    #[test]
    fn inheritance_maps_sids_and_generic_bits_and_marks_auto_inherited() {
        let a = alice();
        let g = sid("S-1-5-21-1-2-3-513");
        let (oi, ci, io) = (OBJECT_INHERIT_ACE, CONTAINER_INHERIT_ACE, INHERIT_ONLY_ACE);
        let mut parent = sd_with(
            &a.user,
            vec![
                allow(oi | ci, GENERIC_ALL, &Sid::everyone()),
                deny(ci | INHERITED_ACE, FILE_WRITE_DATA, &creator_group()),
                allow(oi | ci, FILE_READ_DATA_, &bob().user),
            ],
        );
        let f = inherited_aces(&parent, false, &a.user, &g);
        assert_eq!(
            f,
            vec![
                allow(0, FILE_ALL_ACCESS, &Sid::everyone()),
                allow(0, FILE_READ_DATA_, &bob().user)
            ]
        );
        let d = inherited_aces(&parent, true, &a.user, &g);
        assert_eq!(
            d,
            vec![
                allow(0, FILE_ALL_ACCESS, &Sid::everyone()),
                allow(oi | ci | io, GENERIC_ALL, &Sid::everyone()),
                deny(0, FILE_WRITE_DATA, &g),
                deny(ci | io, FILE_WRITE_DATA, &creator_group()),
                allow(oi | ci, FILE_READ_DATA_, &bob().user),
            ]
        );
        parent.control |= SE_DACL_AUTO_INHERITED;
        let f = inherited_aces(&parent, false, &a.user, &g);
        assert!(f.iter().all(|e| e.flags == INHERITED_ACE));
        let d = inherited_aces(&parent, true, &a.user, &g);
        assert!(d.iter().all(|e| e.flags & INHERITED_ACE != 0));
        // A NULL parent DACL has nothing to inherit.
        parent.dacl = None;
        assert!(inherited_aces(&parent, false, &a.user, &g).is_empty());
    }

    #[test]
    fn initial_descriptor_of_a_new_object() {
        let a = alice();
        let unstored = default_sd(&a, true);
        assert_eq!(
            initial_sd(&unstored, false, None, &a, false),
            Ok(None),
            "nothing stored, nothing to store"
        );
        // Inherits from a stored parent; control AUTO_INHERITED follows the parent's.
        let mut parent = sd_with(
            &a.user,
            vec![allow(
                OBJECT_INHERIT_ACE,
                FILE_WRITE_DATA | WRITE_DAC,
                &a.user,
            )],
        );
        parent.control |= SE_DACL_AUTO_INHERITED;
        let sd = initial_sd(&parent, true, None, &a, false).unwrap().unwrap();
        assert_eq!(
            sd.control,
            SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_AUTO_INHERITED
        );
        assert_eq!(sd.owner.as_ref(), Some(&a.user));
        assert_eq!(sd.group, Some(builtin_users()));
        assert_eq!(
            sd.dacl.unwrap().aces,
            vec![allow(INHERITED_ACE, FILE_WRITE_DATA | WRITE_DAC, &a.user)]
        );
        // A directory below gets the OBJECT_INHERIT ACE inherit-only, for its files: its
        // own DACL grants nothing (as on Windows).
        let sd = initial_sd(&parent, true, None, &a, true).unwrap().unwrap();
        assert_eq!(
            sd.dacl.unwrap().aces,
            vec![allow(
                INHERITED_ACE | OBJECT_INHERIT_ACE | INHERIT_ONLY_ACE,
                FILE_WRITE_DATA | WRITE_DAC,
                &a.user
            )]
        );
        // Nothing inheritable: owner and SYSTEM get full access.
        let parent = sd_with(
            &a.user,
            vec![
                allow(0, FILE_ALL_ACCESS, &a.user),
                allow(CONTAINER_INHERIT_ACE, FILE_ALL_ACCESS, &a.user),
            ],
        );
        let sd = initial_sd(&parent, true, None, &a, false).unwrap().unwrap();
        assert_eq!(sd.control, SE_SELF_RELATIVE | SE_DACL_PRESENT);
        assert_eq!(
            sd.dacl.unwrap().aces,
            vec![
                allow(0, FILE_ALL_ACCESS, &a.user),
                allow(0, FILE_ALL_ACCESS, &local_system())
            ]
        );
        // A SecD: its owner, group and DACL (generic bits mapped), PROTECTED kept.
        let mut given = sd_with(
            &Sid::everyone(),
            vec![allow(0, GENERIC_READ, &Sid::everyone())],
        );
        given.group = Some(sid("S-1-5-32-544"));
        given.control |= SE_DACL_PROTECTED | SE_DACL_AUTO_INHERITED;
        let sd = initial_sd(&unstored, false, Some(&given), &a, false)
            .unwrap()
            .unwrap();
        assert_eq!(sd.owner, Some(Sid::everyone()));
        assert_eq!(sd.group, Some(sid("S-1-5-32-544")));
        assert_eq!(
            sd.control,
            SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_PROTECTED
        );
        assert_eq!(
            sd.dacl.unwrap().aces,
            vec![allow(0, FILE_GENERIC_READ, &Sid::everyone())]
        );
        // A SecD without DACL: the DACL is inherited (here from the synthesized parent).
        let bare = SecurityDescriptor {
            control: SE_SELF_RELATIVE,
            ..Default::default()
        };
        let sd = initial_sd(&unstored, false, Some(&bare), &a, false)
            .unwrap()
            .unwrap();
        assert_eq!(sd.owner.as_ref(), Some(&a.user));
        assert_eq!(sd.dacl, default_sd(&a, false).dacl);
        // A SecD with a NULL DACL.
        let null = SecurityDescriptor {
            control: SE_DACL_PRESENT,
            ..Default::default()
        };
        let sd = initial_sd(&unstored, false, Some(&null), &a, false)
            .unwrap()
            .unwrap();
        assert!(sd.has_null_dacl());
        // Refused: an owner outside the token, a SACL.
        let mut other = given.clone();
        other.owner = Some(bob().user);
        assert_eq!(
            initial_sd(&unstored, false, Some(&other), &a, false),
            Err(INVALID_OWNER)
        );
        let mut sacl = given.clone();
        sacl.control |= SE_SACL_PRESENT;
        sacl.sacl = Some(Acl::new(vec![]));
        assert_eq!(
            initial_sd(&unstored, false, Some(&sacl), &a, false),
            Err(status::PRIVILEGE_NOT_HELD)
        );
    }

    #[test]
    fn set_info_merges_the_parts_named() {
        let a = alice();
        let cur = default_sd(&a, false);
        let new = sd_with(
            &Sid::everyone(),
            vec![
                allow(0, GENERIC_READ, &a.user),
                allow(INHERIT_ONLY_ACE | OBJECT_INHERIT_ACE, GENERIC_ALL, &a.user),
            ],
        );
        // DACL only: owner and group stay.
        let m = merge(&cur, &new, DACL_SECURITY_INFORMATION, &a).unwrap();
        assert_eq!(m.owner, cur.owner);
        assert_eq!(m.group, cur.group);
        assert_eq!(
            m.dacl.unwrap().aces,
            vec![
                allow(0, FILE_GENERIC_READ, &a.user),
                allow(INHERIT_ONLY_ACE | OBJECT_INHERIT_ACE, GENERIC_ALL, &a.user)
            ],
            "generic bits mapped except on inherit-only ACEs"
        );
        // Owner only: the DACL stays.
        let m = merge(&cur, &new, OWNER_SECURITY_INFORMATION, &a).unwrap();
        assert_eq!(m.owner, Some(Sid::everyone()));
        assert_eq!(m.dacl, cur.dacl);
        // Group: taken as given (any SID); missing is an error.
        let mut g = new.clone();
        g.group = Some(sid("S-1-5-21-7-7-7-7"));
        assert_eq!(
            merge(&cur, &g, GROUP_SECURITY_INFORMATION, &a)
                .unwrap()
                .group,
            g.group
        );
        g.group = None;
        assert_eq!(
            merge(&cur, &g, GROUP_SECURITY_INFORMATION, &a),
            Err(INVALID_PRIMARY_GROUP)
        );
        // The owner must be in the token.
        let mut o = new.clone();
        o.owner = Some(bob().user);
        assert_eq!(
            merge(&cur, &o, OWNER_SECURITY_INFORMATION, &a),
            Err(INVALID_OWNER)
        );
        o.owner = None;
        assert_eq!(
            merge(&cur, &o, OWNER_SECURITY_INFORMATION, &a),
            Err(INVALID_OWNER)
        );
        // No DACL given, or DACL_PRESENT without an ACL: a NULL DACL, still present.
        for control in [0, SE_DACL_PRESENT] {
            let n = SecurityDescriptor {
                control,
                ..Default::default()
            };
            let m = merge(&cur, &n, DACL_SECURITY_INFORMATION, &a).unwrap();
            assert!(m.has_null_dacl());
            assert_eq!(m.control, SE_SELF_RELATIVE | SE_DACL_PRESENT);
        }
    }

    #[test]
    fn set_info_odd_parts() {
        let a = alice();
        let cur = default_sd(&a, false);
        // OWNER_DEFAULTED / GROUP_DEFAULTED follow the part set.
        let mut new = sd_with(&a.user, vec![]);
        new.control |= SE_OWNER_DEFAULTED | SE_GROUP_DEFAULTED;
        let m = merge(&cur, &new, OWNER_SECURITY_INFORMATION, &a).unwrap();
        assert_eq!(
            m.control & (SE_OWNER_DEFAULTED | SE_GROUP_DEFAULTED),
            SE_OWNER_DEFAULTED
        );
        let m = merge(
            &m,
            &sd_with(&a.user, vec![]),
            OWNER_SECURITY_INFORMATION,
            &a,
        )
        .unwrap();
        assert_eq!(m.control & SE_OWNER_DEFAULTED, 0);
        // A SACL (were it allowed) is taken with its PRESENT bit; the DACL stays.
        let mut sacl = sd_with(&a.user, vec![]);
        sacl.control = SE_SACL_PRESENT | SE_SACL_PROTECTED;
        sacl.sacl = Some(Acl::new(vec![Ace::new(0x02, 0, DELETE, Sid::everyone())]));
        let m = merge(&cur, &sacl, SACL_SECURITY_INFORMATION, &a).unwrap();
        assert_eq!(m.sacl, sacl.sacl);
        assert_eq!(
            m.control,
            SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_SACL_PRESENT | SE_SACL_PROTECTED
        );
        assert_eq!(m.dacl, cur.dacl);
        // The SecD create context must parse.
        assert_eq!(
            parse_sd_context(&[1, 0]),
            Err(Fail::Status(INVALID_SECURITY_DESCR))
        );
        assert_eq!(parse_sd_context(&cur.to_bytes().unwrap()), Ok(cur));
    }

    /// smb2.acls.INHERITFLAGS: AUTO_INHERIT_REQ is never stored, AUTO_INHERITED only with
    /// it, PROTECTED always; INHERITED_ACE flags on ACEs are kept.
    #[test]
    fn set_info_control_bits() {
        let a = alice();
        let cur = default_sd(&a, true);
        for i in 0u16..16 {
            let mut control = SE_DACL_PRESENT;
            if i & 1 != 0 {
                control |= SE_DACL_AUTO_INHERITED;
            }
            if i & 2 != 0 {
                control |= SE_DACL_AUTO_INHERIT_REQ;
            }
            if i & 4 != 0 {
                control |= SE_DACL_PROTECTED;
            }
            let flags = if i & 8 != 0 { INHERITED_ACE } else { 0 } | OBJECT_INHERIT_ACE;
            let new = SecurityDescriptor {
                control,
                dacl: Some(Acl::new(vec![allow(flags, FILE_WRITE_DATA, &a.user)])),
                ..Default::default()
            };
            let m = merge(&cur, &new, DACL_SECURITY_INFORMATION, &a).unwrap();
            let mut want = SE_SELF_RELATIVE | SE_DACL_PRESENT | (control & SE_DACL_PROTECTED);
            if i & 3 == 3 {
                want |= SE_DACL_AUTO_INHERITED;
            }
            assert_eq!(m.control, want, "pass {i}");
            assert_eq!(m.dacl.unwrap().aces[0].flags, flags, "pass {i}");
        }
    }

    #[test]
    fn set_info_access_needed() {
        let all = FILE_ALL_ACCESS;
        assert_eq!(
            check_set_access(all, SACL_SECURITY_INFORMATION),
            Err(status::PRIVILEGE_NOT_HELD)
        );
        assert_eq!(
            check_set_access(all | ACCESS_SYSTEM_SECURITY, SACL_SECURITY_INFORMATION),
            Ok(())
        );
        assert_eq!(
            check_set_access(WRITE_DAC, DACL_SECURITY_INFORMATION),
            Ok(())
        );
        assert_eq!(
            check_set_access(WRITE_OWNER, DACL_SECURITY_INFORMATION),
            Err(status::ACCESS_DENIED)
        );
        assert_eq!(
            check_set_access(
                WRITE_OWNER,
                OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION
            ),
            Ok(())
        );
        assert_eq!(
            check_set_access(WRITE_DAC, GROUP_SECURITY_INFORMATION),
            Err(status::ACCESS_DENIED)
        );
        assert_eq!(
            check_set_access(WRITE_DAC, OWNER_SECURITY_INFORMATION),
            Err(status::ACCESS_DENIED)
        );
        assert_eq!(check_set_access(0, LABEL_SECURITY_INFORMATION), Ok(()));
    }

    // ---------------------------------------------------------------- against a share

    struct Share {
        _dir: tempfile::TempDir,
        root: ShareRoot,
    }

    fn share() -> Option<Share> {
        let dir = tempfile::tempdir().unwrap();
        let root = ShareRoot::open(dir.path()).unwrap();
        root.xattrs_supported().then_some(Share { _dir: dir, root })
    }

    fn mk(root: &ShareRoot, path: &str, dir: bool) -> Handle {
        let opts = OpenOptions {
            read: true,
            write: !dir,
            disposition: Disposition::OpenIf,
            kind: if dir {
                Kind::Directory
            } else {
                Kind::NonDirectory
            },
            attributes_on_create: 0,
            mode: if dir { 0o755 } else { 0o644 },
        };
        root.open_file(path, &opts).unwrap().0
    }

    fn store(h: &Handle, sd: &SecurityDescriptor) {
        h.set_security_descriptor(&sd.to_bytes().unwrap()).unwrap();
    }

    fn req(desired: u32, disposition: u32) -> OpenRequest {
        OpenRequest {
            desired,
            disposition,
            options: 0,
            tree_maximal: FILE_ALL_ACCESS,
            sec_desc: None,
        }
    }

    fn check(
        s: &Share,
        token: &Token,
        path: &'static str,
        r: OpenRequest,
        created: bool,
    ) -> Result<(u32, u32), Fail> {
        let h = mk(&s.root, path, false);
        OpenCheck::new(token.clone(), &s.root, r).after_open(&h, path, created)
    }

    #[test]
    fn open_of_an_object_without_descriptor_is_as_before() {
        let Some(s) = share() else { return };
        let a = alice();
        assert_eq!(
            check(&s, &a, "f", req(FILE_READ_DATA_, FILE_OPEN), false),
            Ok((FILE_READ_DATA_, FILE_ALL_ACCESS))
        );
        assert_eq!(
            check(&s, &bob(), "f", req(GENERIC_ALL, FILE_OPEN), false),
            Ok((FILE_ALL_ACCESS, FILE_ALL_ACCESS))
        );
        let mut r = req(MAXIMUM_ALLOWED, FILE_OPEN);
        r.tree_maximal = FILE_GENERIC_READ;
        assert_eq!(
            check(&s, &a, "f", r, false),
            Ok((FILE_GENERIC_READ, FILE_GENERIC_READ)),
            "the tree limits"
        );
    }

    #[test]
    fn open_checks_the_stored_dacl_and_the_parent() {
        let Some(s) = share() else { return };
        let a = alice();
        let d = mk(&s.root, "d", true);
        let f = mk(&s.root, "d/f", false);
        store(
            &f,
            &sd_with(&a.user, vec![allow(0, FILE_WRITE_DATA, &a.user)]),
        );
        let open =
            |t: &Token, r| OpenCheck::new(t.clone(), &s.root, r).after_open(&f, "d/f", false);
        // smb2.acls.OWNER: WRITE_DATA from the DACL, READ_ATTRIBUTES through the parent,
        // the owner's implicit rights; nothing else.
        for bit in 0..16 {
            let want = 1u32 << bit;
            let ok = open(&a, req(want, FILE_OPEN)).is_ok();
            assert_eq!(
                ok,
                want == FILE_WRITE_DATA || want == FILE_READ_ATTRIBUTES,
                "bit {bit:#x}"
            );
        }
        assert!(open(&a, req(READ_CONTROL | WRITE_DAC, FILE_OPEN)).is_ok());
        assert_eq!(
            open(&a, req(WRITE_OWNER, FILE_OPEN)),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        // DELETE through the parent's FILE_DELETE_CHILD; MAXIMUM_ALLOWED gets the lot.
        let max = FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | DELETE | READ_CONTROL | WRITE_DAC;
        assert_eq!(open(&a, req(DELETE, FILE_OPEN)), Ok((DELETE, max)));
        assert_eq!(open(&a, req(MAXIMUM_ALLOWED, FILE_OPEN)), Ok((max, max)));
        // MXAC-NOT-GRANTED: MAXIMUM_ALLOWED with a right not held is refused.
        assert_eq!(
            open(&a, req(MAXIMUM_ALLOWED | FILE_READ_DATA_, FILE_OPEN)),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        // Someone else: only what the parent gives.
        assert_eq!(
            open(&bob(), req(MAXIMUM_ALLOWED, FILE_OPEN)),
            Ok((DELETE | FILE_READ_ATTRIBUTES, DELETE | FILE_READ_ATTRIBUTES))
        );
        // A parent that grants neither: no DELETE, no READ_ATTRIBUTES.
        store(
            &d,
            &sd_with(&a.user, vec![allow(0, FILE_ADD_FILE, &Sid::everyone())]),
        );
        assert_eq!(open(&bob(), req(MAXIMUM_ALLOWED, FILE_OPEN)), Ok((0, 0)));
        assert_eq!(
            open(&a, req(DELETE, FILE_OPEN)),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        // Delete on close needs DELETE.
        let mut r = req(MAXIMUM_ALLOWED, FILE_OPEN);
        r.options = FILE_DELETE_ON_CLOSE;
        assert_eq!(open(&a, r), Err(Fail::Status(status::ACCESS_DENIED)));
    }

    #[test]
    fn overwriting_needs_write_data() {
        let Some(s) = share() else { return };
        let a = alice();
        let f = mk(&s.root, "f", false);
        store(
            &f,
            &sd_with(&a.user, vec![allow(0, FILE_READ_DATA_, &a.user)]),
        );
        let open = |disp| {
            OpenCheck::new(a.clone(), &s.root, req(FILE_READ_DATA_, disp))
                .after_open(&f, "f", false)
        };
        assert!(open(FILE_OPEN).is_ok());
        assert!(open(FILE_OPEN_IF).is_ok());
        for disp in [FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF] {
            assert_eq!(
                open(disp),
                Err(Fail::Status(status::ACCESS_DENIED)),
                "disposition {disp}"
            );
        }
    }
    use super::super::create::FILE_OPEN_IF;

    #[test]
    fn a_broken_stored_descriptor_grants_nothing() {
        let Some(s) = share() else { return };
        let a = alice();
        let f = mk(&s.root, "f", false);
        f.set_security_descriptor(&[1, 0, 4, 0x80, 9, 9]).unwrap();
        let r = OpenCheck::new(a.clone(), &s.root, req(READ_CONTROL, FILE_OPEN))
            .after_open(&f, "f", false);
        assert_eq!(r, Err(Fail::Status(status::ACCESS_DENIED)));
        let q = SecurityDescriptor::from_bytes(&query_info(&f, false, &a, 7).unwrap()).unwrap();
        assert_eq!(q.owner, None);
        assert_eq!(q.dacl().map(|d| d.aces.len()), Some(0));
    }

    #[test]
    fn creating_needs_add_file_on_a_stored_parent() {
        let Some(s) = share() else { return };
        let a = alice();
        let d = mk(&s.root, "d", true);
        let new = |path: &'static str, dir: bool| {
            let h = mk(&s.root, path, dir);
            let r = OpenCheck::new(a.clone(), &s.root, req(FILE_READ_DATA_, FILE_CREATE))
                .after_open(&h, path, true);
            (r, s.root.stat(path).is_ok())
        };
        // No stored descriptor: anything goes.
        assert_eq!(
            new("d/a", false),
            (Ok((FILE_READ_DATA_, FILE_ALL_ACCESS)), true)
        );
        // Subdirectories only: a new file is refused and removed, a directory is kept.
        store(
            &d,
            &sd_with(
                &bob().user,
                vec![allow(
                    0,
                    FILE_ADD_SUBDIRECTORY | FILE_LIST_DIRECTORY,
                    &Sid::everyone(),
                )],
            ),
        );
        assert_eq!(
            new("d/b", false),
            (Err(Fail::Status(status::ACCESS_DENIED)), false)
        );
        assert!(matches!(new("d/c", true), (Ok(_), true)));
        // Files only (to the user itself).
        store(
            &d,
            &sd_with(&bob().user, vec![allow(0, FILE_ADD_FILE, &a.user)]),
        );
        assert!(matches!(new("d/e", false), (Ok(_), true)));
        assert_eq!(
            new("d/g", true),
            (Err(Fail::Status(status::ACCESS_DENIED)), false)
        );
        // Opening what exists needs no right on the parent.
        let r = OpenCheck::new(a.clone(), &s.root, req(FILE_READ_DATA_, FILE_OPEN_IF)).after_open(
            &mk(&s.root, "d/a", false),
            "d/a",
            false,
        );
        assert!(r.is_ok());
    }

    #[test]
    fn entries_added_or_removed_outside_create() {
        let Some(s) = share() else { return };
        let a = alice();
        let d = mk(&s.root, "d", true);
        let f = mk(&s.root, "d/f", false);
        assert_eq!(check_add_entry(&s.root, &a, "d", false), Ok(()));
        assert_eq!(
            check_delete_entry(&s.root, &bob(), "d/f"),
            Ok(()),
            "nothing stored"
        );
        store(
            &d,
            &sd_with(&a.user, vec![allow(0, FILE_ADD_FILE, &a.user)]),
        );
        assert_eq!(check_add_entry(&s.root, &a, "d", false), Ok(()));
        assert_eq!(
            check_add_entry(&s.root, &a, "d", true),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        assert_eq!(
            check_add_entry(&s.root, &bob(), "d", false),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        assert_eq!(
            check_add_entry(&s.root, &a, "nope", false),
            Err(Fail::Status(status::OBJECT_NAME_NOT_FOUND))
        );
        // The file's own DELETE, else the directory's FILE_DELETE_CHILD.
        store(&f, &sd_with(&a.user, vec![allow(0, DELETE, &a.user)]));
        assert_eq!(check_delete_entry(&s.root, &a, "d/f"), Ok(()));
        assert_eq!(
            check_delete_entry(&s.root, &bob(), "d/f"),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        store(
            &d,
            &sd_with(&a.user, vec![allow(0, FILE_DELETE_CHILD, &bob().user)]),
        );
        assert_eq!(check_delete_entry(&s.root, &bob(), "d/f"), Ok(()));
    }

    #[test]
    fn a_secd_context_is_checked_before_the_open() {
        let Some(s) = share() else { return };
        let a = alice();
        let before = |disp, sd: SecurityDescriptor| {
            let mut r = req(FILE_READ_DATA_, disp);
            r.sec_desc = Some(sd);
            OpenCheck::new(a.clone(), &s.root, r).before_open()
        };
        assert_eq!(
            before(FILE_CREATE, sd_with(&bob().user, vec![])),
            Err(Fail::Status(INVALID_OWNER))
        );
        assert_eq!(
            before(FILE_OPEN_IF, sd_with(&bob().user, vec![])),
            Err(Fail::Status(INVALID_OWNER))
        );
        assert_eq!(
            before(FILE_OPEN, sd_with(&bob().user, vec![])),
            Ok(()),
            "never creates: ignored"
        );
        assert_eq!(before(FILE_CREATE, sd_with(&a.user, vec![])), Ok(()));
        let mut sacl = sd_with(&a.user, vec![]);
        sacl.control |= SE_SACL_PRESENT;
        sacl.sacl = Some(Acl::new(vec![]));
        assert_eq!(
            before(FILE_SUPERSEDE, sacl),
            Err(Fail::Status(status::PRIVILEGE_NOT_HELD))
        );
        assert_eq!(
            OpenCheck::new(a.clone(), &s.root, req(0, FILE_CREATE)).before_open(),
            Ok(())
        );
    }

    #[test]
    fn a_new_object_gets_its_descriptor_and_what_it_asked_for() {
        let Some(s) = share() else { return };
        let a = alice();
        let d = mk(&s.root, "d", true);
        // Parent without descriptor, no SecD: nothing stored.
        let (g, m) = check(&s, &a, "d/plain", req(FILE_READ_DATA_, FILE_CREATE), true).unwrap();
        assert_eq!((g, m), (FILE_READ_DATA_, FILE_ALL_ACCESS));
        assert_eq!(
            mk(&s.root, "d/plain", false).security_descriptor().unwrap(),
            None
        );
        // smb2.acls.INHERITANCE: the parent passes [owner: WRITE_DATA|WRITE_DAC] on; the
        // creator still gets everything it asked for, a later open does not.
        store(
            &d,
            &sd_with(
                &a.user,
                vec![
                    allow(OBJECT_INHERIT_ACE, FILE_WRITE_DATA | WRITE_DAC, &a.user),
                    allow(0, FILE_ALL_ACCESS, &Sid::everyone()),
                ],
            ),
        );
        let (g, _) = check(&s, &a, "d/f", req(FILE_ALL_ACCESS, FILE_CREATE), true).unwrap();
        assert_eq!(g, FILE_ALL_ACCESS);
        let f = mk(&s.root, "d/f", false);
        let stored = load(&f).unwrap().unwrap();
        assert_eq!(
            stored.dacl.unwrap().aces,
            vec![allow(0, FILE_WRITE_DATA | WRITE_DAC, &a.user)]
        );
        assert_eq!(stored.owner, Some(a.user.clone()));
        assert_eq!(
            check(&s, &a, "d/f", req(FILE_ALL_ACCESS, FILE_OPEN), false),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        assert!(check(&s, &a, "d/f", req(FILE_WRITE_DATA, FILE_OPEN), false).is_ok());
        // A SecD wins over inheritance; MAXIMUM_ALLOWED on create is everything.
        let mut r = req(MAXIMUM_ALLOWED, FILE_CREATE);
        r.sec_desc = Some(sd_with(
            &a.user,
            vec![allow(0, FILE_READ_DATA_, &authenticated_users())],
        ));
        let (g, m) = check(&s, &a, "d/secd", r, true).unwrap();
        assert_eq!(g, FILE_ALL_ACCESS);
        assert_eq!(
            m,
            FILE_READ_DATA_ | OWNER_IMPLICIT | FILE_READ_ATTRIBUTES | DELETE
        );
        let stored = load(&mk(&s.root, "d/secd", false)).unwrap().unwrap();
        assert_eq!(
            stored.dacl.unwrap().aces,
            vec![allow(0, FILE_READ_DATA_, &authenticated_users())]
        );
    }

    #[test]
    fn a_new_object_whose_descriptor_cannot_be_stored_is_removed() {
        let Some(s) = share() else { return };
        let a = alice();
        // More ACEs than an ext4 xattr block holds (and below SD_MAX).
        let aces = (0..1500)
            .map(|i| allow(0, FILE_READ_DATA_, &sid(&format!("S-1-5-21-1-2-3-{i}"))))
            .collect();
        let mut r = req(FILE_READ_DATA_, FILE_CREATE);
        r.sec_desc = Some(sd_with(&a.user, aces));
        let h = mk(&s.root, "big", false);
        match OpenCheck::new(a.clone(), &s.root, r).after_open(&h, "big", true) {
            Ok(_) => assert!(h.security_descriptor().unwrap().is_some(), "stored whole"),
            Err(e) => {
                assert_eq!(e, Fail::Status(status::DISK_FULL));
                assert_eq!(s.root.stat("big").err(), Some(FsError::NotFound));
            }
        }
    }

    #[test]
    fn query_and_set_through_a_handle() {
        let Some(s) = share() else { return };
        let a = alice();
        let f = mk(&s.root, "f", false);
        // Nothing stored: the synthesized descriptor, as before.
        assert_eq!(
            query_info(&f, false, &a, 7).unwrap(),
            duet_fscc::default_security_descriptor(&a.user, &builtin_users(), false, 7)
        );
        let dacl_only = |aces| {
            SecurityDescriptor {
                control: SE_DACL_PRESENT,
                dacl: Some(Acl::new(aces)),
                ..Default::default()
            }
            .to_bytes()
            .unwrap()
        };
        // WRITE_DAC needed for the DACL; nothing is stored when refused.
        assert_eq!(
            set_info(
                &f,
                READ_CONTROL,
                false,
                &a,
                DACL_SECURITY_INFORMATION,
                &dacl_only(vec![])
            ),
            Err(Fail::Status(status::ACCESS_DENIED))
        );
        assert_eq!(f.security_descriptor().unwrap(), None);
        assert_eq!(
            set_info(
                &f,
                WRITE_DAC,
                false,
                &a,
                DACL_SECURITY_INFORMATION,
                &[1, 2, 3]
            ),
            Err(Fail::Status(INVALID_SECURITY_DESCR))
        );
        set_info(
            &f,
            WRITE_DAC,
            false,
            &a,
            DACL_SECURITY_INFORMATION,
            &dacl_only(vec![allow(0, GENERIC_READ, &a.user)]),
        )
        .unwrap();
        // Stored: owner kept from the synthesized descriptor, DACL mapped.
        let q = SecurityDescriptor::from_bytes(&query_info(&f, false, &bob(), 5).unwrap()).unwrap();
        assert_eq!(
            q.owner,
            Some(a.user.clone()),
            "the stored owner, whoever asks"
        );
        assert_eq!(q.group, None, "only the parts asked for");
        assert_eq!(q.control, SE_SELF_RELATIVE | SE_DACL_PRESENT);
        assert_eq!(
            q.dacl.unwrap().aces,
            vec![allow(0, FILE_GENERIC_READ, &a.user)]
        );
        // SACL: no privilege.
        assert_eq!(
            set_info(
                &f,
                FILE_ALL_ACCESS,
                false,
                &a,
                SACL_SECURITY_INFORMATION,
                &dacl_only(vec![])
            ),
            Err(Fail::Status(status::PRIVILEGE_NOT_HELD))
        );
        // Owner: only to a SID of the token.
        let owner = |o: &Sid| {
            SecurityDescriptor {
                owner: Some(o.clone()),
                ..Default::default()
            }
            .to_bytes()
            .unwrap()
        };
        assert_eq!(
            set_info(
                &f,
                WRITE_OWNER,
                false,
                &a,
                OWNER_SECURITY_INFORMATION,
                &owner(&bob().user)
            ),
            Err(Fail::Status(INVALID_OWNER))
        );
        set_info(
            &f,
            WRITE_OWNER,
            false,
            &a,
            OWNER_SECURITY_INFORMATION,
            &owner(&Sid::everyone()),
        )
        .unwrap();
        let q = SecurityDescriptor::from_bytes(&query_info(&f, false, &a, 5).unwrap()).unwrap();
        assert_eq!(q.owner, Some(Sid::everyone()));
        assert_eq!(
            q.dacl.unwrap().aces,
            vec![allow(0, FILE_GENERIC_READ, &a.user)],
            "the DACL stays"
        );
    }
}
