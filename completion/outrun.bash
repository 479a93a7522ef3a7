# bash completion for outrun(1): options, hosts (ssh_config Host names, known_hosts), then the
# commands on the local PATH after the destination (the command runs from this machine), and
# that command's own completion when bash-completion is loaded.
# Installed at PREFIX/share/bash-completion/completions/outrun; or source it from ~/.bashrc.

# Keep in step with `outrun --help` (test/unit/bash-completion.test.ts compares them).
_outrun_options='-p -l -i -F -o -J -C -v -t -T -S -O -- --stats --cache-paths --cache-size --no-cache --no-chroot --mount --timeout --kill-after --kernel-cache --check --help --version'
_outrun_options_with_argument='-p -l -i -F -o -J -S -O --cache-paths --cache-size --timeout --kill-after --kernel-cache --mount'
# The ssh_config keys outrun honours, for -o.
_outrun_ssh_keys='BatchMode Compression ConnectTimeout GlobalKnownHostsFile HostKeyAlias HostName IdentitiesOnly IdentityAgent IdentityFile Port ProxyCommand ProxyJump SendEnv ServerAliveCountMax ServerAliveInterval StrictHostKeyChecking User UserKnownHostsFile'

# Host names from ssh_config files (Host lines without patterns, Include followed one level) and
# known_hosts files (plain entries; hashed ones cannot be read back).
_outrun_hosts() {
  local config=$1 f line word
  local -a words
  local -a configs=() known=("$HOME/.ssh/known_hosts" /etc/ssh/ssh_known_hosts)
  if [[ -n $config ]]; then
    [[ $config != none ]] && configs+=("${config/#\~/$HOME}")
  else
    configs+=("$HOME/.ssh/config" /etc/ssh/ssh_config)
  fi
  local -a files=("${configs[@]}")
  for f in "${configs[@]}"; do
    [[ -r $f ]] || continue
    while read -r line; do
      read -ra words <<<"$line"
      for word in "${words[@]}"; do
        [[ $word == /* || $word == "~"/* ]] || word="$HOME/.ssh/$word"
        files+=(${word/#\~/$HOME})
      done
    done < <(sed -n 's/^[[:space:]]*[Ii][Nn][Cc][Ll][Uu][Dd][Ee][[:space:]=]\{1,\}//p' "$f")
  done
  for f in "${files[@]}"; do
    [[ -f $f && -r $f ]] || continue
    sed -n 's/^[[:space:]]*[Hh][Oo][Ss][Tt][[:space:]=]\{1,\}//p' "$f" | tr ' \t' '\n\n' | grep -v '[*?!]' | grep -v '^$'
  done
  for f in "${known[@]}"; do
    [[ -r $f ]] || continue
    awk '$1 !~ /^[@#|]/ && NF >= 3 { print $1 }' "$f" | tr ',' '\n' | sed 's/^\[\(.*\)\]:[0-9]*$/\1/'
  done
}

# Executables on the local PATH that start with $1.
_outrun_path_commands() {
  local dir f
  local IFS=:
  for dir in $PATH; do
    [[ -d $dir ]] || continue
    for f in "$dir/$1"*; do
      [[ -f $f && -x $f ]] && printf '%s\n' "${f##*/}"
    done
  done | sort -u
}

_outrun() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev='' config='' i word destination=-1 after_dashes=0
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  COMPREPLY=()
  # Find the destination: the first word that is neither an option nor an option's argument.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if ((after_dashes)) || [[ $word != -* || $word == - ]]; then
      destination=$i
      break
    fi
    [[ $word == -- ]] && { after_dashes=1; continue; }
    if [[ " $_outrun_options_with_argument " == *" $word "* ]]; then
      [[ $word == -F ]] && config=${COMP_WORDS[i + 1]}
      ((i++))
    elif [[ $word == -F?* ]]; then
      config=${word#-F}
    fi
  done

  if ((destination > 0)); then
    if ((COMP_CWORD == destination + 1)); then
      mapfile -t COMPREPLY < <(_outrun_path_commands "$cur")
    elif declare -F _command_offset >/dev/null; then
      _command_offset $((destination + 1))
    else
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
    return 0
  fi

  if ((!after_dashes)) && [[ " $_outrun_options_with_argument " == *" $prev "* ]]; then
    case $prev in
      -i | -F) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
      -l) mapfile -t COMPREPLY < <(compgen -u -- "$cur") ;;
      -o) mapfile -t COMPREPLY < <(compgen -S = -W "$_outrun_ssh_keys" -- "$cur"); compopt -o nospace 2>/dev/null ;;
      -J) mapfile -t COMPREPLY < <(compgen -W "$(_outrun_hosts "$config")" -- "$cur") ;;
      --cache-paths) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
      --mount) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    esac
    return 0
  fi
  if ((!after_dashes)) && [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$_outrun_options" -- "$cur")
    return 0
  fi
  local user=''
  if [[ $cur == *@* ]]; then
    user=${cur%%@*}@
    cur=${cur#*@}
  fi
  mapfile -t COMPREPLY < <(compgen -P "$user" -W "$(_outrun_hosts "$config" | sort -u)" -- "$cur")
  return 0
}

complete -F _outrun outrun
