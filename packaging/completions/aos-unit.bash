# bash completion for aos-unit(8)
# Installed as /usr/share/bash-completion/completions/aos-unit.
# Node names come from the configuration file, read with sed; aos-unit is
# never run.

_aos_unit_config=/etc/aos-unit/unit_config.yaml

# Prints the node names in unit_config.yaml, block style (- name: main) and
# flow style ({ name: main, ... }), one per line.
_aos_unit_nodes()
{
    [ -r "$_aos_unit_config" ] || return 0
    sed -e 's/#.*$//' "$_aos_unit_config" 2>/dev/null |
        grep -oE '(^|[[:space:]{,-])name:[[:space:]]*["'\'']?[A-Za-z0-9-]+' |
        sed -E 's/.*name:[[:space:]]*["'\'']?//'
}

# Sets COMPREPLY to what compgen "$@" offers for $cur (of the caller).
_aos_unit_reply()
{
    mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")
}

_aos_unit()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="validate plan list status doctor console reset export snapshot startup prepare run monitor powerdown lease-hook failed cleanup help"

    # The subcommand: the first word after "aos-unit" that is not an option.
    local i cmd="" cmd_index=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -*) ;;
            *) cmd=${words[i]}; cmd_index=$i; break ;;
        esac
    done

    if [ -z "$cmd" ]; then
        case $cur in
            -*) _aos_unit_reply -W "-h --help -V --version" ;;
            *) _aos_unit_reply -W "$commands" ;;
        esac
        return 0
    fi

    # Arguments after the subcommand that are not options.
    local args=0
    for ((i = cmd_index + 1; i < cword; i++)); do
        case ${words[i]} in
            -c | --config-dir) ((i++)) ;;
            -*) ;;
            *) ((args++)) ;;
        esac
    done

    case $cmd in
        validate | plan)
            case $prev in
                -c | --config-dir)
                    _aos_unit_reply -d
                    return 0
                    ;;
            esac
            local opts="-c --config-dir -h --help"
            [ "$cmd" = plan ] && opts="$opts --json"
            _aos_unit_reply -W "$opts"
            ;;
        list | status | doctor)
            _aos_unit_reply -W "--json -h --help"
            ;;
        console | reset | failed | powerdown)
            local opts="-h --help"
            [ "$cmd" = reset ] && opts="$opts --efivars"
            [ "$cmd" = failed ] && opts="$opts --final"
            [ "$cmd" = powerdown ] && opts="$opts --timeout"
            if [[ $cur == -* ]]; then
                _aos_unit_reply -W "$opts"
            elif [ "$args" -eq 0 ]; then
                _aos_unit_reply -W "$(_aos_unit_nodes)"
            fi
            ;;
        snapshot)
            if [[ $cur == -* ]]; then
                _aos_unit_reply -W "--json --memory --disk-only -h --help"
            elif [ "$args" -eq 0 ]; then
                _aos_unit_reply -W "save restore list delete"
            elif [ "$args" -eq 1 ]; then
                # The snapshots there are: a directory each, with its manifest (readable
                # by root and the aos-unit group).
                local names f
                names=""
                for f in /var/lib/aos-unit/snapshots/*/manifest.json; do
                    [ -e "$f" ] || continue
                    f=${f%/manifest.json}
                    names="$names ${f##*/}"
                done
                _aos_unit_reply -W "$names"
            fi
            ;;
        lease-hook)
            if [[ $cur == -* ]]; then
                _aos_unit_reply -W "-h --help"
            elif [ "$args" -eq 0 ]; then
                _aos_unit_reply -W "add old del"
            fi
            ;;
        help)
            [ "$args" -eq 0 ] && _aos_unit_reply -W "$commands"
            ;;
        startup | prepare | run | monitor | cleanup)
            _aos_unit_reply -W "-h --help"
            ;;
    esac
    return 0
}

complete -F _aos_unit aos-unit
