//! The factor entry the gate and the step-up prompt share: an OTP field,
//! Ctrl-p switching it to a PIV PIN field, Ctrl-a for the ssh-agent key.

use tui_input::Input;

use crate::core::action::GateInput;
use crate::tui::keymap::KeyAction;

/// What a key did to the factor entry.
pub enum Entry {
    /// Send this factor.
    Send(GateInput),
    /// The entry changed (or an empty field was submitted): nothing to send.
    Changed,
    /// Not a factor-entry key: the screen handles it.
    Other,
}

/// Applies a resolved key action to the entry (`input` holds the OTP or, when
/// `piv` is set, the PIN). Submitting clears the field.
pub fn on_action(input: &mut Input, piv: &mut bool, action: Option<KeyAction>) -> Entry {
    match action {
        Some(KeyAction::Open) => {
            let typed = input.value().to_string();
            *input = Input::default();
            let value = if *piv {
                typed
            } else {
                typed.trim().to_string()
            };
            match (value.is_empty(), *piv) {
                (true, _) => Entry::Changed,
                (false, true) => Entry::Send(GateInput::Piv { pin: value }),
                (false, false) => Entry::Send(GateInput::Otp(value)),
            }
        }
        Some(KeyAction::Piv) => {
            *piv = !*piv;
            *input = Input::default();
            Entry::Changed
        }
        Some(KeyAction::Agent) => Entry::Send(GateInput::Agent),
        _ => Entry::Other,
    }
}
