//! Fuzzes HTTP body decoding for every request body type, through the one
//! strict decoder the server's `ApiJson` uses: it never panics, and
//! accepts only objects that are valid UTF-8 throughout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::api::{
    AddMembersRequest, ConversationSettingsRequest, CreateGroupRequest, DirectRequest,
    LoginRequest, ProfileRequest, RegisterRequest, RenameRequest, RoleRequest, SendRequest,
    SettingsRequest,
};
use parley_proto::decode::object_from_slice;
use parley_proto::push::PushRegistration;
use serde::de::DeserializeOwned;

fn check<T: DeserializeOwned>(data: &[u8]) {
    if object_from_slice::<T>(data).is_ok() {
        let text = std::str::from_utf8(data).expect("accepted bodies are UTF-8");
        assert!(
            text.trim_start().starts_with('{'),
            "only objects are bodies"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check::<RegisterRequest>(data);
    check::<LoginRequest>(data);
    check::<SettingsRequest>(data);
    check::<DirectRequest>(data);
    check::<CreateGroupRequest>(data);
    check::<AddMembersRequest>(data);
    check::<RenameRequest>(data);
    check::<RoleRequest>(data);
    check::<SendRequest>(data);
    check::<ProfileRequest>(data);
    check::<ConversationSettingsRequest>(data);
    check::<PushRegistration>(data);
});
