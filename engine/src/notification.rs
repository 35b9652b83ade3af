//! The notification codes of DESIGN §1, shared by the protocol messages and the frame codec.

/// The notification code of a frame (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Notification {
    /// A gateway wants to join a DC net.
    Register = 1,
    /// Seeds are exchanged with the assigned neighbours; the gateway is ready.
    Joined = 2,
    /// A client leaves; its neighbours drop their shared seeds.
    Exit = 3,
    /// A corrected local superposition after a neighbour was missing.
    Resend = 4,
    /// The round's local superposition.
    Transmit = 5,
}

impl Notification {
    /// All notifications in code order.
    pub const ALL: [Notification; 5] = [
        Self::Register,
        Self::Joined,
        Self::Exit,
        Self::Resend,
        Self::Transmit,
    ];

    /// The notification with wire code `code`, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|n| *n as u8 == code)
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The lowercase name DESIGN §1 gives the notification.
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Joined => "joined",
            Self::Exit => "exit",
            Self::Resend => "resend",
            Self::Transmit => "transmit",
        }
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
