//! Group rules: who may change a group and how, group names and sizes, and
//! the `system` messages that announce each change.

use parley_proto::api::ConversationKind;
use parley_proto::{ConversationId, Message, Role, SystemEvent, UserId};

use super::messages::system_message;
use crate::error::{StoreError, StoreResult};
use crate::model::{ConversationRecord, GroupChange, GroupChangeKind, NewGroup};

/// A group name: 1 to 100 characters after trimming.
pub(crate) fn validate_group_name(name: &str) -> StoreResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "group name must be 1 to 100 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// The refusal for a group that would exceed `max_members`.
pub(crate) fn too_large(max_members: usize) -> StoreError {
    StoreError::TooLarge(format!("a group has at most {max_members} members"))
}

/// `requested` without duplicates and without `except`, in request order.
/// An absurdly long list is refused before anyone looks the users up.
pub(crate) fn distinct_candidates(
    requested: &[UserId],
    except: &[UserId],
    max_members: usize,
) -> StoreResult<Vec<UserId>> {
    if requested.len() > max_members.saturating_mul(4).max(4096) {
        return Err(too_large(max_members));
    }
    let mut out: Vec<UserId> = Vec::with_capacity(requested.len());
    for &user in requested {
        if !except.contains(&user) && !out.contains(&user) {
            out.push(user);
        }
    }
    Ok(out)
}

/// Refuses a group of `count` members when over `max_members`.
pub(crate) fn check_group_size(count: usize, max_members: usize) -> StoreResult<()> {
    if count > max_members {
        return Err(too_large(max_members));
    }
    Ok(())
}

/// A group about to be created, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewGroupPlan {
    /// The validated name.
    pub(crate) name: String,
    /// The creator first, then the other members in request order.
    pub(crate) members: Vec<UserId>,
}

impl NewGroupPlan {
    /// The members other than the creator (who becomes admin).
    pub(crate) fn others(&self) -> &[UserId] {
        &self.members[1..]
    }
}

/// Checks a group to create: its name, its members (deduplicated, the
/// creator not repeated) and its size. The engine still checks that the
/// users exist.
pub(crate) fn plan_new_group(new: &NewGroup) -> StoreResult<NewGroupPlan> {
    let name = validate_group_name(&new.name)?;
    let others = distinct_candidates(&new.member_ids, &[new.creator], new.max_members)?;
    check_group_size(others.len() + 1, new.max_members)?;
    let mut members = Vec::with_capacity(others.len() + 1);
    members.push(new.creator);
    members.extend(others);
    Ok(NewGroupPlan { name, members })
}

/// The `created` message of a new group (always seq 1).
pub(crate) fn created_message(
    conversation: ConversationId,
    plan: &NewGroupPlan,
    now: i64,
) -> Message {
    let mut message = system_message(
        conversation,
        1,
        plan.members[0],
        SystemEvent::Created,
        plan.members.clone(),
        now,
    );
    message.name = Some(plan.name.clone());
    message
}

/// The `renamed` message.
pub(crate) fn renamed_message(
    conversation: ConversationId,
    seq: u64,
    actor: UserId,
    name: String,
    now: i64,
) -> Message {
    let mut message = system_message(conversation, seq, actor, SystemEvent::Renamed, vec![], now);
    message.name = Some(name);
    message
}

/// The `role_changed` message giving `user` its new `role`.
pub(crate) fn role_changed_message(
    conversation: ConversationId,
    seq: u64,
    actor: UserId,
    user: UserId,
    role: Role,
    now: i64,
) -> Message {
    let mut message = system_message(
        conversation,
        seq,
        actor,
        SystemEvent::RoleChanged,
        vec![user],
        now,
    );
    message.role = Some(role);
    message
}

/// What an administrative change does, decided from the group as it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GroupPlan {
    /// Nothing to do (the role is already set, nobody new to add).
    Unchanged,
    /// Add these users; the engine still checks that they exist and then
    /// the size with [`check_group_size`].
    Add {
        /// New to the group, deduplicated, in request order.
        candidates: Vec<UserId>,
    },
    /// Remove (or let leave) a member.
    Remove {
        /// The member.
        user: UserId,
        /// `member_left` or `member_removed`.
        event: SystemEvent,
        /// Promoted to admin after the removal: the longest-standing
        /// remaining member, when the last admin goes.
        successor: Option<UserId>,
    },
    /// Rename to this (validated) name.
    Rename {
        /// The new name.
        name: String,
    },
    /// Give a member a new role.
    SetRole {
        /// The member.
        user: UserId,
        /// Its new role.
        role: Role,
    },
}

impl GroupPlan {
    /// The `system` message announcing this plan as the group's `seq`;
    /// `None` when nothing changes. (A removal that promotes a successor is
    /// followed by a [`role_changed_message`] at `seq + 1`.)
    pub(crate) fn announcement(
        &self,
        conversation: ConversationId,
        seq: u64,
        actor: UserId,
        now: i64,
    ) -> Option<Message> {
        Some(match self {
            GroupPlan::Unchanged => return None,
            GroupPlan::Add { candidates } => system_message(
                conversation,
                seq,
                actor,
                SystemEvent::MemberAdded,
                candidates.clone(),
                now,
            ),
            GroupPlan::Remove { user, event, .. } => {
                system_message(conversation, seq, actor, *event, vec![*user], now)
            }
            GroupPlan::Rename { name } => {
                renamed_message(conversation, seq, actor, name.clone(), now)
            }
            GroupPlan::SetRole { user, role } => {
                role_changed_message(conversation, seq, actor, *user, *role, now)
            }
        })
    }
}

/// Checks `change` against the group's current state and says what to do.
/// `record` must be read inside the transaction that applies the plan.
pub(crate) fn plan_group_change(
    record: &ConversationRecord,
    change: &GroupChange,
) -> StoreResult<GroupPlan> {
    if record.kind != ConversationKind::Group {
        return Err(StoreError::Invalid(
            "only groups can be administered".into(),
        ));
    }
    let actor = record
        .member(change.actor)
        .ok_or(StoreError::Forbidden("you are not a member of this group"))?;
    // Anyone may leave; everything else is for admins.
    let leaving = matches!(change.kind, GroupChangeKind::Remove { user } if user == change.actor);
    if !leaving && actor.role != Role::Admin {
        return Err(StoreError::Forbidden("only group admins can do that"));
    }
    Ok(match &change.kind {
        GroupChangeKind::Add { users } => {
            let current: Vec<UserId> = record.members.iter().map(|m| m.user_id).collect();
            let candidates = distinct_candidates(users, &current, change.max_members)?;
            if candidates.is_empty() {
                GroupPlan::Unchanged
            } else {
                check_group_size(current.len() + candidates.len(), change.max_members)?;
                GroupPlan::Add { candidates }
            }
        }
        GroupChangeKind::Remove { user } => {
            let target = record.member(*user).ok_or(StoreError::NotFound("member"))?;
            let admins_left = record
                .members
                .iter()
                .any(|m| m.user_id != *user && m.role == Role::Admin);
            // Members are in join order: the first other one has been
            // there longest.
            let successor = if target.role == Role::Admin && !admins_left {
                record
                    .members
                    .iter()
                    .find(|m| m.user_id != *user)
                    .map(|m| m.user_id)
            } else {
                None
            };
            GroupPlan::Remove {
                user: *user,
                event: if leaving {
                    SystemEvent::MemberLeft
                } else {
                    SystemEvent::MemberRemoved
                },
                successor,
            }
        }
        GroupChangeKind::Rename { name } => GroupPlan::Rename {
            name: validate_group_name(name)?,
        },
        GroupChangeKind::SetRole { user, role } => {
            let target = record.member(*user).ok_or(StoreError::NotFound("member"))?;
            let admins = record
                .members
                .iter()
                .filter(|m| m.role == Role::Admin)
                .count();
            if target.role == *role {
                GroupPlan::Unchanged
            } else if *role == Role::Member && admins <= 1 {
                return Err(StoreError::Invalid(
                    "a group needs at least one admin".into(),
                ));
            } else {
                GroupPlan::SetRole {
                    user: *user,
                    role: *role,
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemberRecord;

    fn group(members: &[(i64, Role)]) -> ConversationRecord {
        ConversationRecord {
            avatar_media_id: None,
            id: ConversationId(1),
            kind: ConversationKind::Group,
            name: Some("g".into()),
            last_seq: 5,
            members: members
                .iter()
                .map(|&(id, role)| MemberRecord {
                    user_id: UserId(id),
                    role,
                    delivered_up_to: 0,
                    read_up_to: 0,
                    joined_seq: 1,
                })
                .collect(),
            delivered_all_up_to: 0,
            read_all_up_to: 0,
        }
    }

    fn change(actor: i64, kind: GroupChangeKind) -> GroupChange {
        GroupChange {
            conversation: ConversationId(1),
            actor: UserId(actor),
            kind,
            max_members: 4,
            now_ms: 0,
        }
    }

    #[test]
    fn only_admins_administer_but_anyone_may_leave() {
        let record = group(&[(1, Role::Admin), (2, Role::Member), (3, Role::Member)]);
        let rename = GroupChangeKind::Rename { name: "x".into() };
        assert!(matches!(
            plan_group_change(&record, &change(2, rename.clone())),
            Err(StoreError::Forbidden(_))
        ));
        assert!(matches!(
            plan_group_change(&record, &change(9, rename)),
            Err(StoreError::Forbidden(_))
        ));
        let leave = GroupChangeKind::Remove { user: UserId(2) };
        assert_eq!(
            plan_group_change(&record, &change(2, leave)).unwrap(),
            GroupPlan::Remove {
                user: UserId(2),
                event: SystemEvent::MemberLeft,
                successor: None
            }
        );
    }

    #[test]
    fn the_longest_standing_member_succeeds_the_last_admin() {
        let record = group(&[(1, Role::Admin), (2, Role::Member), (3, Role::Member)]);
        let plan = plan_group_change(
            &record,
            &change(1, GroupChangeKind::Remove { user: UserId(1) }),
        );
        assert_eq!(
            plan.unwrap(),
            GroupPlan::Remove {
                user: UserId(1),
                event: SystemEvent::MemberLeft,
                successor: Some(UserId(2))
            }
        );
        let two_admins = group(&[(1, Role::Admin), (2, Role::Member), (3, Role::Admin)]);
        let plan = plan_group_change(
            &two_admins,
            &change(1, GroupChangeKind::Remove { user: UserId(1) }),
        );
        assert!(matches!(
            plan.unwrap(),
            GroupPlan::Remove {
                successor: None,
                ..
            }
        ));
    }

    #[test]
    fn adds_are_deduplicated_and_sized() {
        let record = group(&[(1, Role::Admin), (2, Role::Member)]);
        let add = |ids: &[i64]| GroupChangeKind::Add {
            users: ids.iter().map(|&i| UserId(i)).collect(),
        };
        assert_eq!(
            plan_group_change(&record, &change(1, add(&[2, 3, 3]))).unwrap(),
            GroupPlan::Add {
                candidates: vec![UserId(3)]
            }
        );
        assert_eq!(
            plan_group_change(&record, &change(1, add(&[1, 2]))).unwrap(),
            GroupPlan::Unchanged
        );
        assert!(matches!(
            plan_group_change(&record, &change(1, add(&[3, 4, 5]))),
            Err(StoreError::TooLarge(_))
        ));
    }

    #[test]
    fn roles_keep_an_admin() {
        let record = group(&[(1, Role::Admin), (2, Role::Member)]);
        let demote_self = GroupChangeKind::SetRole {
            user: UserId(1),
            role: Role::Member,
        };
        assert!(matches!(
            plan_group_change(&record, &change(1, demote_self)),
            Err(StoreError::Invalid(_))
        ));
        let same = GroupChangeKind::SetRole {
            user: UserId(2),
            role: Role::Member,
        };
        assert_eq!(
            plan_group_change(&record, &change(1, same)).unwrap(),
            GroupPlan::Unchanged
        );
    }

    #[test]
    fn new_groups_put_the_creator_first_and_are_sized() {
        let new = |ids: &[i64], max_members| NewGroup {
            creator: UserId(1),
            name: " g ".into(),
            member_ids: ids.iter().map(|&i| UserId(i)).collect(),
            max_members,
            now_ms: 0,
        };
        let plan = plan_new_group(&new(&[2, 1, 3, 2], 4)).unwrap();
        assert_eq!(plan.name, "g");
        assert_eq!(plan.members, vec![UserId(1), UserId(2), UserId(3)]);
        assert_eq!(plan.others(), &[UserId(2), UserId(3)]);
        let created = created_message(ConversationId(7), &plan, 9);
        assert_eq!((created.seq, created.sender_id), (1, UserId(1)));
        assert_eq!(created.user_ids, Some(plan.members.clone()));
        assert_eq!(created.name.as_deref(), Some("g"));
        assert!(matches!(
            plan_new_group(&new(&[2, 3], 2)),
            Err(StoreError::TooLarge(_))
        ));
    }

    #[test]
    fn each_change_is_announced_at_its_seq() {
        let at = |plan: GroupPlan| plan.announcement(ConversationId(1), 6, UserId(1), 9);
        assert_eq!(at(GroupPlan::Unchanged), None);
        let added = at(GroupPlan::Add {
            candidates: vec![UserId(3)],
        })
        .unwrap();
        assert_eq!(added.event, Some(SystemEvent::MemberAdded));
        assert_eq!((added.seq, added.sent_at_ms), (6, 9));
        assert_eq!(added.user_ids, Some(vec![UserId(3)]));
        let removed = at(GroupPlan::Remove {
            user: UserId(2),
            event: SystemEvent::MemberRemoved,
            successor: None,
        })
        .unwrap();
        assert_eq!(removed.event, Some(SystemEvent::MemberRemoved));
        let renamed = at(GroupPlan::Rename { name: "n".into() }).unwrap();
        assert_eq!(renamed.name.as_deref(), Some("n"));
        let role = at(GroupPlan::SetRole {
            user: UserId(2),
            role: Role::Admin,
        })
        .unwrap();
        assert_eq!(role.role, Some(Role::Admin));
        assert_eq!(role.user_ids, Some(vec![UserId(2)]));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_group_name("  Team ").unwrap(), "Team");
        assert!(validate_group_name("   ").is_err());
        assert!(validate_group_name(&"x".repeat(101)).is_err());
    }
}
