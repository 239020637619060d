//! Shell completion of what clap cannot know statically: procedure names (bundled and site) and
//! each procedure's declared arguments. `opsh completions <shell>` prints clap's script for the
//! flags and subcommands plus a small hook that asks `opsh __complete <words…>` for the rest.

use crate::host::Host;

/// Candidates for the last word, given the words before it (without the program name); `cli`
/// is the command line's clap definition (its flags and subcommands).
pub fn candidates(host: &Host, cli: &clap::Command, words: &[String]) -> Vec<String> {
    let (current, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let positional: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with('-'))
        .collect();
    let procedures = || host.catalog().list().into_iter().map(|l| l.name);
    let mut out: Vec<String> = match positional.as_slice() {
        _ if current.starts_with('-') => cli
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect(),
        [] => cli
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_string())
            .chain(procedures())
            .collect(),
        ["run"] => procedures().collect(),
        ["run", name, ..] | [name, ..] => arguments(host, name),
    };
    out.retain(|c| c.starts_with(current));
    out.sort();
    out.dedup();
    out
}

/// `name=` for each argument the procedure declares.
fn arguments(host: &Host, name: &str) -> Vec<String> {
    let Ok(script) = host.catalog().find(name) else {
        return Vec::new();
    };
    crate::host::params::declared(&script.display, &script.source)
        .unwrap_or_default()
        .into_iter()
        .map(|d| format!("{}=", d.name))
        .collect()
}

/// The hook appended to clap's script: procedures and their arguments come from the binary.
pub fn hook(shell: clap_complete::Shell) -> &'static str {
    match shell {
        clap_complete::Shell::Bash => BASH,
        clap_complete::Shell::Zsh => ZSH,
        clap_complete::Shell::Fish => FISH,
        _ => "",
    }
}

const BASH: &str = r#"
# Procedures and their declared arguments, asked of opsh itself.
_opsh_procedures() {
    local IFS=$'\n'
    local words=("${COMP_WORDS[@]:1:COMP_CWORD}")
    local first=${COMP_WORDS[1]}
    case $first in
        scripts|config|migrate|api|completions|help) _opsh "$@"; return ;;
    esac
    COMPREPLY=($(opsh __complete "${words[@]}" 2>/dev/null))
    [[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
    ((${#COMPREPLY[@]})) || _opsh "$@"
}
complete -F _opsh_procedures -o bashdefault -o default opsh
"#;

const ZSH: &str = r#"
# Procedures and their declared arguments, asked of opsh itself.
_opsh_procedures() {
    local -a candidates
    candidates=(${(f)"$(opsh __complete ${words[2,CURRENT]} 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -S '' -- $candidates
    else
        _opsh "$@"
    fi
}
compdef _opsh_procedures opsh
"#;

const FISH: &str = r#"
# Procedures and their declared arguments, asked of opsh itself.
complete -c opsh -f -a '(opsh __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
"#;
